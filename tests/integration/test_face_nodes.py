"""The face nodes run in-process through ComfyUI's own loader, on packs in the real insightface signatures."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

from fixtures.fake_insightface import fake_insightface_root, paint_face  # noqa: E402

FACE_NODES = {"RealisID_FaceAnalysisLoader", "RealisID_FaceAnalysis", "RealisID_Identity", "RealisID_IdentityBatch",
              "RealisID_IDProjectorLoader", "RealisID_IdentityTokens", "RealisID_PoseExpression",
              "RealisID_LocationsFromFaces", "RealisID_LocationsFromMask", "RealisID_Person", "RealisID_People",
              "RealisID_PeopleFromLocations"}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    from fixtures.host import host_node, load_pack, pack_module
    load_pack()
    import folder_paths
    folder_paths.add_model_folder_path("insightface", fake_insightface_root(), is_default=True)
    realisid = tmp_path_factory.mktemp("realisid")
    from safetensors.torch import save_file
    projector = pack_module("realisid_core.models.projector").IDProjector(512, 4, 768)
    save_file({k: v.contiguous() for k, v in projector.state_dict().items()}, str(realisid / "realisid_id_proj.safetensors"))
    folder_paths.add_model_folder_path("realisid", str(realisid), is_default=True)
    return host_node, pack_module


def as_image(bgr):
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).float()[None] / 255


def layout_photo():
    """The astronaut photo with two detector faces: face 0 on the left, face 1 (larger) on the right."""
    bgr = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    return paint_face(paint_face(bgr, 128, 384, 48), 384, 128, 60)


def group_photo():
    import cv2
    return cv2.imread(str(Path(__import__("insightface").__file__).parent / "data" / "images" / "t1.jpg"))


def load(host, pack="antelopev2"):
    node, _ = host
    return node("RealisID_FaceAnalysisLoader").load(pack, "CPU", "640")[0]


def test_face_nodes_register_in_comfyui(host):
    import nodes
    assert FACE_NODES <= set(nodes.NODE_CLASS_MAPPINGS)
    for name in FACE_NODES:
        cls = nodes.NODE_CLASS_MAPPINGS[name]
        assert cls.CATEGORY.startswith("RealisID/") and name in nodes.NODE_DISPLAY_NAME_MAPPINGS


def test_two_loader_nodes_get_the_same_analyzer(host):
    node, pack_module = host
    a = node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0]
    b = node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0]
    assert a is b
    assert len([k for k in pack_module("realisid_core.faces.analyzer").cached_analyzers() if k == a.key]) == 1
    assert node("RealisID_FaceAnalysisLoader").load("buffalo_l", "CPU", "640")[0] is not a  # nested layout found


def test_analysis_selects_faces_and_names_the_picture_without_a_face(host):
    node, _ = host
    analyzer = load(host)
    images = torch.cat([as_image(layout_photo()), as_image(np.ascontiguousarray(group_photo()[:512, :512]))])
    analysis = node("RealisID_FaceAnalysis")
    with pytest.raises(ValueError, match=r"RealisID Face Analysis: input 'images': no face was found in image 2 of 2.*Fix:"):
        analysis.analyze(analyzer, images, "all, left to right", 0, 0.5, True)
    faces, preview = analysis.analyze(analyzer, images, "all, left to right", 0, 0.5, False)
    assert faces.count == 2 and [f.centre_x < 256 for f in faces.faces] == [True, False]
    assert preview.shape == (2, 512, 512, 3) and preview.min() >= 0 and preview.max() <= 1
    largest, _ = analysis.analyze(analyzer, images[:1], "largest", 0, 0.5, True)
    assert largest.count == 1 and largest.faces[0].centre_x > 256
    with pytest.raises(ValueError, match=r"input 'index': index 5 asks for face 6 in reading order, but photo 1 of 1 has 2 faces"):
        analysis.analyze(analyzer, images[:1], "by index", 5, 0.5, True)


def test_identity_tokens_and_three_identities_for_two_locations(host):
    node, pack_module = host
    analyzer = load(host)
    photos = torch.cat([as_image(layout_photo()), as_image(layout_photo()[:, ::-1])])
    identity, preview = node("RealisID_Identity").identify(analyzer, photos, "error")
    assert identity.count == 1 and float(identity.embeddings.norm()) == pytest.approx(1, abs=1e-5)
    assert identity.pack == "antelopev2" and identity.norms is not None and float(identity.norms[0]) > 0
    # the preview marks, in each photo, the face that was used (the largest: the right one here) in green
    assert preview.shape == (2, 512, 512, 3)
    green = (preview[0, ..., 1] > 0.8) & (preview[0, ..., 0] < 0.1) & (preview[0, ..., 2] < 0.1)
    ys, xs = torch.nonzero(green, as_tuple=True)
    assert xs.float().mean() > 256
    no_face = torch.cat([photos, as_image(np.ascontiguousarray(group_photo()[:512, -512:]))])
    with pytest.raises(ValueError, match=r"RealisID Identity: input 'images': no face was found in photo 3 of 3"):
        node("RealisID_Identity").identify(analyzer, no_face, "error")
    skipped, _ = node("RealisID_Identity").identify(analyzer, no_face, "skip")
    assert torch.allclose(skipped.embeddings, identity.embeddings)
    (three,) = node("RealisID_IdentityBatch").join(identity, identity_2=skipped, identity_3=identity)
    (projector,) = node("RealisID_IDProjectorLoader").load("realisid_id_proj.safetensors")
    assert node("RealisID_IDProjectorLoader").load("realisid_id_proj.safetensors")[0] is projector
    (tokens,) = node("RealisID_IdentityTokens").project(projector, three)
    assert isinstance(tokens, pack_module("realisid_core.people.identity").IdentityTokens)
    assert tokens.tokens.shape == (3, 4, 768)
    two = node("RealisID_LocationsFromFaces").locate(
        node("RealisID_FaceAnalysis").analyze(analyzer, as_image(layout_photo()), "all, left to right", 0, 0.5, True)[0], 0)[0]
    with pytest.raises(ValueError, match=r"input 'id_tokens': 3 were given for 2 locations"):
        node("RealisID_PeopleFromLocations").make(two, 1.0, id_tokens=tokens)
    people, _ = node("RealisID_PeopleFromLocations").make(two, 1.0, id_tokens=tokens.person(0))
    assert all(torch.equal(p.tokens.tokens, tokens.tokens[:1]) for p in people.persons)


def test_layout_photo_to_locations_to_people_with_poses(host):
    node, pack_module = host
    analyzer = load(host)
    faces, _ = node("RealisID_FaceAnalysis").analyze(analyzer, as_image(layout_photo()), "all, left to right", 0, 0.5, True)
    locations, preview = node("RealisID_LocationsFromFaces").locate(faces, 0)
    assert locations.count == 2 and preview.shape[-1] == 3
    pose, pose_preview = node("RealisID_PoseExpression").extract(faces, 2, False)
    assert len(pose) == 1 and pose[0].landmarks_68 is not None and pose_preview.shape[-1] == 3
    both, _ = node("RealisID_PoseExpression").extract(faces, 0, True)
    assert len(both) == 2
    # the mirrored pose is the pose of the face in the mirrored photo
    mirrored_faces, _ = node("RealisID_FaceAnalysis").analyze(analyzer, as_image(layout_photo()[:, ::-1]),
                                                              "all, left to right", 0, 0.5, True)
    again = pack_module("realisid_core.faces.pose").FacePose.from_face(mirrored_faces.faces[1])
    np.testing.assert_allclose(both[0].keypoints, again.keypoints, atol=0.02)
    people, people_preview = node("RealisID_PeopleFromLocations").make(locations, 1.0, poses=pose)
    assert people.count == 2 and all(p.pose is pose[0] for p in people.persons)
    assert people_preview.shape == (1, 768, 768, 3) and float(people_preview.max()) > 0
    person = node("RealisID_Person").make(2, "", 0.5, locations=locations, pose=pose)[0]
    assert person.place.box == tuple(locations.boxes[1].tolist()) and "layout photo" in person.place.source
    with pytest.raises(ValueError, match=r"input 'location_number': face 3 was asked for but the locations have 2 faces"):
        node("RealisID_Person").make(3, "", 1.0, locations=locations)
    with pytest.raises(ValueError, match=r"input 'face_number': face 3 was asked for but 2 faces were found"):
        node("RealisID_PoseExpression").extract(faces, 3, False)
    with pytest.raises(ValueError, match=r"input 'poses': 3 were given for 2 locations"):
        node("RealisID_PeopleFromLocations").make(locations, 1.0, poses=pose * 3)


def test_missing_onnxruntime_or_opencv_says_what_to_install(host, monkeypatch):
    node, pack_module = host
    import nodes
    pack_module("realisid_core.faces.analyzer").release_all()
    for missing, pip_name in (("onnxruntime", "onnxruntime-gpu"), ("cv2", "opencv-python")):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, missing, None)  # what `import` sees when the package is not installed
            with pytest.raises(ImportError, match=rf"RealisID Face Analysis Loader needs the Python package '{pip_name}.*pip install"):
                node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "insightface", None)  # not needed: the packs run on onnxruntime directly
        assert node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0].models
    assert FACE_NODES <= set(nodes.NODE_CLASS_MAPPINGS)  # still registered
