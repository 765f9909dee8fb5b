"""Smoke test of `python -m benchmarks` at toy size: the table/JSON structure, and that every ratio
divides figures of the same run. No timing assertions (speed is measured by the benchmark only)."""
import json

import pytest

from benchmarks import report
from benchmarks.timing import paired_ratio
from benchmarks.__main__ import parse
from benchmarks.run import Options, run
from fixtures.host import HOST_PRESENT, NO_HOST_REASON


def synthetic_results(gpu=False):
    local = {f: {"batched": {"median_ms": 10.0 * f, "forwards": 1},
                 "sequential": {"median_ms": 12.0 * f, "forwards": f},
                 "glue": {"median_ms": 0.2 * f, "share": 0.02}} for f in (1, 4)}
    return {
        "environment": {"device": "cuda:0" if gpu else "cpu"},
        "settings": {"steps": 2},
        "per_step": {"unet": {"median_ms": 100.0}, "unet_global": {"median_ms": 150.0}, "local": local},
        "passes": {"base": {"median_ms": 300.0},
                   "realisid": {1: {"median_ms": 320.0}, 4: {"median_ms": 500.0}},
                   "detailer_route": {1: {"median_ms": 600.0}, 4: {"median_ms": 450.0}}},
        "memory": {"method": "x", "bytes": {1: {"batched": 2**20, "sequential": 2**20},
                                            4: {"batched": 4 * 2**20, "sequential": 2**20}}},
        "sharing": {"loader_two_loads_share_weights": False, "nodes_on_one_loaded_controlnet_share_weights": True},
        "face_analysis": {"status": "not measured: no insightface"},
    }


def test_ratios_and_targets_come_from_the_figures_of_the_run():
    rows = {r["measurement"]: r for r in report.build_rows(synthetic_results())}
    assert rows["U-Net + global branch"]["ratio"] == pytest.approx(1.5)
    seq4 = rows["local branch, F=4, sequential (4 forwards)"]
    assert seq4["ratio"] == pytest.approx(40 / 48) and seq4["status"] == "MISSED" and "GPU" in seq4["target"]
    assert rows["local branch, F=1, sequential (1 forwards)"]["status"] == ""  # the batching target is for F=4
    assert rows["glue (crop, hints, paste, merge), F=4"]["status"] == "met"
    assert rows["RealisID pass, F=1 (U-Net + global + local)"]["ratio"] == pytest.approx(320 / 600)
    assert rows["RealisID pass, F=1 (U-Net + global + local)"]["status"] == "met"
    assert rows["RealisID pass, F=4 (U-Net + global + local)"]["status"] == "MISSED"
    assert rows["local branch peak, F=4, batched (MiB)"]["ratio"] == pytest.approx(4.0)
    assert rows["one file loaded twice by ComfyUI's ControlNet loader"]["status"] == "TWO copies"
    table = report.markdown(list(rows.values()))
    assert table.splitlines()[0].startswith("| Measurement") and "MISSED" in table and "2.0%" in table


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    a, b = {"median_ms": 2.0, "runs_ms": [1.0, 2.0, 9.0]}, {"median_ms": 4.0, "runs_ms": [2.0, 4.0, 10.0]}
    assert paired_ratio(a, b) == pytest.approx(0.5)
    assert paired_ratio({"median_ms": 3.0}, {"median_ms": 4.0}) == pytest.approx(0.75)


def test_command_line_options():
    options, path = parse(["--faces", "1,4", "--repeats", "2", "--json", "x.json", "--sdxl"])
    assert options.faces == (1, 4) and options.repeats == 2 and options.family == "sdxl" and path == "x.json"
    with pytest.raises(SystemExit):
        parse(["--faces", "9"])


@pytest.mark.skipif(not HOST_PRESENT, reason=NO_HOST_REASON)
def test_toy_run_through_the_real_code_paths_writes_table_and_json(tmp_path):
    results = run(Options(family="toy", resolution=128, faces=(1, 2), repeats=1, steps=1,
                          sharing=False, face_analysis=False))
    rows = report.build_rows(results)
    step = results["per_step"]
    assert set(step["local"]) == {1, 2}
    assert step["local"][2]["batched"]["forwards"] == 1 and step["local"][2]["sequential"]["forwards"] == 2
    by_name = {r["measurement"]: r for r in rows}
    assert by_name["U-Net + global branch"]["ratio"] == pytest.approx(paired_ratio(step["unet_global"], step["unet"]))
    assert len(step["unet"]["runs_ms"]) == len(step["unet_global"]["runs_ms"]) == 1  # timed interleaved
    local2 = step["local"][2]
    assert by_name["local branch, F=2, sequential (2 forwards)"]["ratio"] == pytest.approx(
        paired_ratio(local2["batched"], local2["sequential"]))
    assert 0 <= local2["glue"]["share"] <= 1
    p = results["passes"]
    assert by_name["RealisID pass, F=2 (U-Net + global + local)"]["ratio"] == pytest.approx(
        paired_ratio(p["realisid"][2], p["detailer_route"][2]))
    assert {r["status"] for r in rows if r["target"]} <= {"met", "MISSED"}
    path = tmp_path / "out.json"
    report.write_json(results, rows, str(path))
    data = json.loads(path.read_text())
    assert data["environment"]["device"] == "cpu" and data["settings"]["resolution"] == 128
    assert data["ratios"]["U-Net + global branch"] == pytest.approx(by_name["U-Net + global branch"]["ratio"])
    assert len(data["rows"]) == len(rows)


def test_activation_peak_counts_tensors_from_creation_to_last_use():
    import torch
    from benchmarks.crops import activation_peak
    x = torch.ones(256, 256)  # made before: not an activation

    def f():
        a = x * 2                 # 256 KiB
        b = a.view(-1)            # a view: nothing new
        c = b + 1                 # 256 KiB, a and c alive
        del a, b
        d = c.t().contiguous()    # 256 KiB, c and d alive
        del c
        return d.sum()
    assert activation_peak(f) == 2 * 256 * 256 * 4
    assert activation_peak(lambda: x.add_(0)) == 0  # in place: nothing new


def test_crop_rows_report_time_per_crop_and_the_factor():
    crops = {"working_size": 64, "time": {1: {"ms_per_crop": 100.0, "per_crop_ratio": 1.0},
                                          2: {"ms_per_crop": 104.0, "per_crop_ratio": 1.04}},
             "meta_fused_attention": {"peak_bytes": {1: 60 * 2**20, 2: 120 * 2**20}, "bytes_per_crop": 60 * 2**20,
                                      "factor": 24.0}}
    rows = {r["measurement"]: r for r in report.crop_rows(crops, "cpu")}
    assert rows["ControlNet forward of 2 crop(s) at 64, ms per crop"]["ratio"] == pytest.approx(1.04)
    per_crop = rows["activations per crop at 64 (counted, fused attention as on GPU) (MiB)"]
    assert per_crop["ms"] == pytest.approx(60.0) and per_crop["ratio"] == pytest.approx(24.0)
    assert "| 24.0 |" in report.markdown([per_crop])


def test_crop_options_and_the_default_working_size():
    options, _ = parse(["--crops-only", "--crop-counts", "1,2,4", "--sdxl"])
    assert options.crops_only and options.crop_counts == (1, 2, 4)
    assert parse(["--crop-counts", ""])[0].crop_counts == ()
    with pytest.raises(SystemExit):
        parse(["--crop-counts", "4,2"])
    from benchmarks.models import FAMILIES
    from benchmarks.run import working_size
    assert working_size(Options(device="cpu"), FAMILIES["sd15"]) == 64  # the pack's default, on every device
    assert working_size(Options(device="cpu", working_size=16), FAMILIES["sd15"]) == 16
