"""python -m realisid_train prepare | train | export | config — see docs/training.md."""
from __future__ import annotations

import argparse
import logging
import os
import sys

EXIT_INTERRUPTED = 130


def _prepare(args) -> int:
    from .prepare import PrepareInterrupted, PrepareSettings, prepare
    settings = PrepareSettings(pack=args.pack, min_face_size=args.min_face_size, min_score=args.min_score,
                               detection_size=args.detection_size, provider=args.provider, workers=args.workers,
                               flush_every=args.flush_every)
    try:
        summary = prepare(args.photos, args.out, os.path.expanduser(args.insightface), settings,
                          progress=not args.quiet)
    except PrepareInterrupted as stopped:
        print(stopped, file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(summary.lines()))
    return 0


def _train(args) -> int:
    from .config import load_config
    from .trainer import Trainer
    config = load_config(args.config, args.set or [])
    trainer = Trainer(config, progress=not args.quiet)
    records = trainer.run()
    if not trainer.accelerator.is_main_process:
        return 0  # several processes (accelerate launch): the main one reports
    if records:
        print(f"trained to step {records[-1].step}: loss {records[-1].loss:.4f}; "
              f"checkpoints in {os.path.join(trainer.config.train.output_dir, 'checkpoints')}; "
              f"log {trainer.log_path}")
    else:
        print(f"nothing to do: the run is already at step {trainer.state.step} (train.max_steps)")
    return 0


def _export(args) -> int:
    from .export import export_checkpoint
    written = export_checkpoint(args.checkpoint, args.out, dtype=args.dtype, name=args.name)
    for role, path in written.items():
        print(f"{role}: {path}")
    return 0


def _estimate(args) -> int:
    from .estimate import estimate, table
    rows = []
    for family in args.family:
        for batch in args.batch_size:
            for checkpointing in ((True, False) if args.both_checkpointing else (not args.no_gradient_checkpointing,)):
                rows.append(estimate(family, batch, local="local" in args.branches, global_="global" in args.branches,
                                     gradient_checkpointing=checkpointing, mixed_precision=args.mixed_precision))
    print(table(rows))
    return 0


def _config(args) -> int:
    from .config import Config, dumps, load_config
    config = load_config(args.config, args.set or []) if (args.config or args.set) else Config()
    family = args.family or (config.base.family if config.base.family != "auto" else None)
    if family:
        config = config.resolve(family)
    sys.stdout.write(dumps(config))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realisid_train",
                                description="Train RealisID's local and global branches and the ID projector.")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("prepare", help="analyse a photo folder into a training manifest")
    pr.add_argument("photos", help="folder of photos (captions optional: a .txt beside each photo)")
    pr.add_argument("--out", required=True, help="data folder for manifest.jsonl, dropped.jsonl, embeddings/")
    pr.add_argument("--insightface", default=os.environ.get("INSIGHTFACE_ROOT", "~/.insightface"),
                    help="insightface root holding models/<pack>/ (ComfyUI's models/insightface works)")
    pr.add_argument("--pack", default="antelopev2", choices=("antelopev2", "buffalo_l"))
    pr.add_argument("--min-face-size", type=int, default=128, help="smallest usable face box side, pixels")
    pr.add_argument("--min-score", type=float, default=0.5, help="smallest usable detection score")
    pr.add_argument("--detection-size", type=int, default=640)
    pr.add_argument("--provider", default="auto", choices=("auto", "CUDA", "ROCm", "CoreML", "CPU"))
    pr.add_argument("--workers", type=int, default=4, help="threads decoding photos and running the analysis")
    pr.add_argument("--flush-every", type=int, default=500, help="photos between saves of the manifest")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(run=_prepare)

    tr = sub.add_parser("train", help="train (or resume training) from a configuration file")
    tr.add_argument("--config", help="TOML configuration (python -m realisid_train config prints every setting)")
    tr.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a setting (repeatable)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(run=_train)

    ex = sub.add_parser("export", help="export a checkpoint as the files the nodes load")
    ex.add_argument("checkpoint", help="a checkpoint folder, or a run folder (its latest checkpoint)")
    ex.add_argument("--out", required=True, help="a ComfyUI models folder (controlnet/ and realisid/ are written in it)")
    ex.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="weights' dtype (default: export.dtype)")
    ex.add_argument("--name", help="file name prefix (default: export.name)")
    ex.set_defaults(run=_export)

    es = sub.add_parser("estimate", help="estimate memory and time per step of standard SD1.5/SDXL configurations "
                                         "(no GPU needed: the real architectures on PyTorch's meta device)")
    es.add_argument("--family", nargs="+", default=["SD1.5", "SDXL"], choices=("SD1.5", "SDXL"))
    es.add_argument("--batch-size", nargs="+", type=int, default=[1, 4])
    es.add_argument("--branches", default="local,global", help="local, global or local,global")
    es.add_argument("--mixed-precision", default="bf16", choices=("bf16", "fp16", "no"))
    es.add_argument("--no-gradient-checkpointing", action="store_true")
    es.add_argument("--both-checkpointing", action="store_true", help="with and without gradient checkpointing")
    es.set_defaults(run=_estimate)

    cf = sub.add_parser("config", help="print the default configuration (every setting) as TOML; with --config, "
                                       "check a configuration file and print it with every setting")
    cf.add_argument("--config", help="a TOML configuration to check (every setting, as `train` checks it)")
    cf.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a setting (repeatable)")
    cf.add_argument("--family", choices=("SD1.5", "SDXL"), help="resolve the family's automatic settings")
    cf.set_defaults(run=_config)
    return p


def main(argv: list[str] | None = None) -> int:
    from realisid_core.errors import RealisIDInputError

    from .config import ConfigError
    from .dataset import DataError
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (ConfigError, DataError, FileNotFoundError, RealisIDInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # files are written whole or not at all; train resumes from its last checkpoint
        print("stopped (Ctrl-C); run the same command again to go on", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
