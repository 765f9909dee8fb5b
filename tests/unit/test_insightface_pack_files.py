"""insightface pack files a user downloads: an empty, cut or foreign file in place of one of the pack's
ONNX models is named with the file and the fix, not onnxruntime's raw error."""
import os
import shutil

import pytest

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")

from fixtures.fake_insightface import write_pack  # noqa: E402
from realisid_core.errors import RealisIDInputError  # noqa: E402
from realisid_core.faces.analyzer import get_analyzer  # noqa: E402
from realisid_core.faces.packs import find_pack_folder  # noqa: E402


@pytest.fixture(scope="module")
def good_pack(tmp_path_factory):
    return write_pack(str(tmp_path_factory.mktemp("insightface")), "buffalo_l")


@pytest.mark.parametrize("damage", ["empty", "cut", "foreign"])
def test_a_damaged_onnx_file_is_named_with_the_fix(good_pack, tmp_path, damage):
    root = tmp_path / "insightface"
    folder = root / "models" / "buffalo_l"
    shutil.copytree(good_pack, folder)
    target = folder / "w600k_r50.onnx"
    data = target.read_bytes()
    target.write_bytes({"empty": b"", "cut": data[: len(data) // 3], "foreign": b"<html>404 Not Found</html>"}[damage])
    with pytest.raises(RealisIDInputError) as refused:
        get_analyzer(find_pack_folder([str(root)], "buffalo_l"), "buffalo_l", "CPU", 640)
    message = str(refused.value)
    assert f"{os.path.join(str(folder), 'w600k_r50.onnx')} is not a readable ONNX model" in message
    assert "Fix: replace it with the original w600k_r50.onnx of the buffalo_l pack" in message
