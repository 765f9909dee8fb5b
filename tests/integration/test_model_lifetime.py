"""Shared models live as long as ComfyUI's node cache uses them: `POST /free` releases them."""
import time

import requests

RELEASED = "RealisID: released face analysis pack antelopev2"


def analysis_graph():
    from comfy_execution.graph_utils import GraphBuilder
    g = GraphBuilder(prefix="")
    photo = g.node("LoadImage", image="realisid_person_1.png").out(0)
    analyzer = g.node("RealisID_FaceAnalysisLoader", pack="antelopev2", provider="CPU", detection_size="640").out(0)
    faces = g.node("RealisID_FaceAnalysis", analyzer=analyzer, images=photo, selection="largest", index=0,
                   threshold=0.5, require_face=True)
    g.node("PreviewImage", images=faces.out(1))
    return g.finalize()


def test_free_memory_releases_the_face_analyzer(workflow_server):
    server = workflow_server
    server.run(analysis_graph())
    assert "RealisID: loading face analysis pack antelopev2" in server.log()
    released_before = server.log().count(RELEASED)
    requests.post(f"{server.url}/free", json={"free_memory": True}, timeout=10).raise_for_status()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.log().count(RELEASED) == released_before:
        time.sleep(0.5)
    assert server.log().count(RELEASED) > released_before, server.log()[-3000:]
