"""Two training processes on one machine without GPUs (`accelerate launch --multi_gpu --num_processes 2` with
train.cpu = true: gloo on the CPU), the line docs/training.md gives; only the main process prints the summary."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from train_helpers import REPO, tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_train_together_and_one_reports(prepared, tiny_sd15, tmp_path):
    from realisid_train.checkpoints import list_checkpoints
    from realisid_train.config import dumps
    _, data, _ = prepared
    run = tmp_path / "run"
    path = tmp_path / "train.toml"
    path.write_text(dumps(tiny_config(tiny_sd15, data, run, max_steps=2)))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()),
               "-m", "realisid_train", "train", "--config", str(path), "--set", "train.cpu=true", "--set",
               "train.mixed_precision=no", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("trained to step 2") == 1, done.stdout
    (step, folder), = list_checkpoints(str(run))
    assert step == 2
    assert sorted(n for n in os.listdir(folder) if n.startswith("random_states")) == \
        ["random_states_0.pkl", "random_states_1.pkl"]  # one per process: two processes trained
    assert (run / "logs" / "loss.csv").read_text().count("\n") == 3
