"""The README's install, resolved by pip for a CUDA Linux machine, gives one onnxruntime: the GPU build.

onnxruntime and onnxruntime-gpu both install the `onnxruntime` package; with both present the CPU one
shadows the GPU one and face analysis silently runs on the CPU. pip resolves the README's requirement
file against PyPI (`--dry-run --report`, nothing installed) for CPython 3.11 on manylinux x86_64, with
the requirement markers read as such a machine reads them. Skipped, saying why, when PyPI cannot be
reached."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
CUDA_LINUX = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "os_name": "posix", "python_version": "3.11",
              "python_full_version": "3.11.9", "implementation_name": "cpython",
              "platform_python_implementation": "CPython"}
PLATFORM_FLAGS = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                  "--platform", "manylinux2014_x86_64", "--only-binary=:all:", "--python-version", "3.11",
                  "--implementation", "cp"]


def readme_requirement_file() -> Path:
    """The file the README's install step names (`pip install -r ComfyUI-RealisID/requirements.txt`)."""
    line = next(l for l in (REPO / "README.md").read_text().splitlines()
                if re.match(r"\s*pip install -r \S*requirements\.txt\s*$", l))
    return REPO / Path(line.split()[-1]).name


def for_cuda_linux(requirements: Path) -> list[str]:
    """The requirement lines as a CUDA Linux machine reads them (markers decided, comments dropped)."""
    kept = []
    for line in requirements.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(CUDA_LINUX):
            requirement.marker = None
            kept.append(str(requirement))
    return kept


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def test_requirements_are_read_as_a_cuda_linux_machine_reads_them():
    lines = for_cuda_linux(REPO / "requirements.txt")
    assert "onnxruntime-gpu" in lines and "onnxruntime" not in lines


def test_the_readmes_install_gives_only_the_gpu_onnxruntime_on_cuda_linux(tmp_path):
    if not pypi_reachable():
        print("SKIPPED: PyPI (pypi.org:443) cannot be reached; the install is not resolved offline")
        pytest.skip("PyPI (pypi.org:443) cannot be reached; the install is not resolved offline")
    requirements = tmp_path / "requirements-cuda-linux.txt"
    requirements.write_text("\n".join(for_cuda_linux(readme_requirement_file())) + "\n")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                           "--target", str(tmp_path / "never-written"), *PLATFORM_FLAGS,
                           "--report", str(report), "-r", str(requirements)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip could not resolve the README's install:\n{done.stderr[-3000:]}"
    items = [item["metadata"] for item in json.loads(report.read_text())["install"]]
    installed = {m["name"].lower(): m["version"] for m in items}
    assert "onnxruntime-gpu" in installed
    wanting_cpu = sorted(f"{m['name']} {m['version']}" for m in items
                         if any(Requirement(r).name.lower() == "onnxruntime" and
                                (Requirement(r).marker is None or Requirement(r).marker.evaluate(CUDA_LINUX))
                                for r in m.get("requires_dist") or []))
    assert "onnxruntime" not in installed, (
        f"the CPU onnxruntime {installed.get('onnxruntime')} would shadow onnxruntime-gpu "
        f"{installed['onnxruntime-gpu']}; required by: {', '.join(wanting_cpu) or 'requirements.txt'}")
