"""The face nodes work where `insightface` cannot be imported (the README's install no longer has it):
a fresh Python that refuses every `insightface` import loads the pack through ComfyUI, loads a pack's
models, finds faces with landmarks, pose and embeddings, and draws the frontal pose."""
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skimage.data")

from fixtures.fake_insightface import fake_insightface_root  # noqa: E402
from fixtures.host import HOST, REPO  # noqa: E402

SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    class RefuseInsightface(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "insightface":
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
            return None

    sys.meta_path.insert(0, RefuseInsightface())
    repo, host, root = sys.argv[1:4]
    sys.path[:0] = [repo, repo + "/tests"]
    try:
        import insightface  # noqa: F401
        raise SystemExit("insightface was importable")
    except ModuleNotFoundError:
        pass

    import numpy as np
    import torch
    from skimage import data
    from fixtures.host import host_node, load_pack, pack_module, use_host
    from fixtures.fake_insightface import paint_face
    use_host(host)
    load_pack()
    import folder_paths
    folder_paths.add_model_folder_path("insightface", root, is_default=True)
    analyzer = host_node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0]
    bgr = paint_face(paint_face(np.ascontiguousarray(data.astronaut()[..., ::-1]), 128, 384, 48), 384, 128, 60)
    image = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).float()[None] / 255
    faces = host_node("RealisID_FaceAnalysis").analyze(analyzer, image, "all, left to right", 0, 0.5, True)[0]
    pose = pack_module("realisid_core.faces.pose")
    print(json.dumps({
        "faces": faces.count,
        "landmarks": [list(f.landmarks_3d_68.shape) + list(f.landmarks_2d_106.shape) for f in faces.faces],
        "poses": [f.pose.tolist() for f in faces.faces],
        "norms": [float(np.linalg.norm(f.embedding)) for f in faces.faces],
        "frontal": list(pose.frontal_pose().landmarks_68.shape),
        "insightface_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "insightface"),
    }))
""")


def test_face_analysis_nodes_run_with_insightface_unimportable():
    root = fake_insightface_root()  # built once per session, shared with the other face tests
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO), str(HOST), root],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["faces"] == 2 and result["landmarks"] == [[68, 3, 106, 2]] * 2
    assert all(len(p) == 3 for p in result["poses"]) and all(abs(n - 1) < 1e-5 for n in result["norms"])
    assert result["frontal"] == [68, 3] and result["insightface_loaded"] == []
