"""The suite passes whatever the clone's folder is called: the README's `ComfyUI-RealisID` (not a Python
identifier) and a name with a space. pytest runs on a copy of the repository in such a folder."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_COPIED = shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".pytest_cache", "results", "*.jpg")


@pytest.mark.parametrize("folder", ["ComfyUI-RealisID", "Realis ID clone"])
def test_the_suite_runs_in_a_clone_whose_name_is_not_a_python_identifier(tmp_path, folder):
    clone = tmp_path / folder
    shutil.copytree(REPO, clone, ignore=NOT_COPIED)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/unit/test_developer_tools.py"],
                          cwd=clone, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
