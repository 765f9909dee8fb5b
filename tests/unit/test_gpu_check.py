"""`python -m benchmarks --gpu-check` runs end to end on the CPU at toy shapes (so it works the day a GPU
comes): every scenario measured, one JSON and one Markdown section written. No timing assertions."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.host import HOST_PRESENT, NO_HOST_REASON

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not HOST_PRESENT, reason=NO_HOST_REASON)
def test_the_gpu_check_runs_every_scenario_on_the_cpu_at_toy_shapes(tmp_path):
    from benchmarks.gpu_check import SCENARIOS
    out, md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--gpu-check", "--device", "cpu", "--toy", "--repeats",
                           "1", "--json", str(out), "--markdown", str(md)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["toy"] is True and list(results["scenarios"]) == [s.name for s in SCENARIOS]
    for name, entry in results["scenarios"].items():
        assert "error" not in entry, (name, entry.get("error"))
    scenarios = results["scenarios"]
    assert scenarios["sd15_local"]["result"]["per_step"]["local"]  # the local branch was timed
    assert scenarios["instantid"]["result"]["rows"][0]["full_forwards"] == 1
    memory = scenarios["crop_memory"]["result"]["rows"]
    assert [r["family"] for r in memory] == [results["scenarios"]["sdxl_crops"]["result"]["family"]] * 2  # toy twice
    assert all(r["measured_bytes_per_crop"] != 0 and "measured_over_counted" in r for r in memory)
    assert scenarios["training"]["result"]["seconds_per_step"] > 0
    text = md.read_text()
    assert text.startswith("## GPU check (cpu)") and "TOY shapes" in text
    assert all(f"### {s.title}" in text for s in SCENARIOS)
    assert text == results["markdown"] and text in done.stdout


def test_an_unknown_scenario_is_refused_before_anything_runs(capsys):
    from benchmarks.__main__ import main
    assert main(["--gpu-check", "--only", "flux"]) == 2
    assert "no scenario flux" in capsys.readouterr().err
