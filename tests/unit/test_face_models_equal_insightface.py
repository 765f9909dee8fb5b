"""Our onnxruntime face models give what insightface's own classes give, on the same pack files:
SCRFD boxes and keypoints (NMS, thresholds, max_num), ArcFace alignment and embeddings, landmarks,
head pose, the mean face; on painted test faces and on real photos. insightface is a test-only package."""
import os
from pathlib import Path

import numpy as np
import pytest

insightface = pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")

from insightface.app.common import Face  # noqa: E402
from insightface.model_zoo import model_zoo  # noqa: E402
from insightface.utils import face_align, transform as if_transform  # noqa: E402

from fixtures.fake_insightface import build_recogniser, fake_insightface_root, paint_face  # noqa: E402
from realisid_core.faces import alignment, onnx_models, pose  # noqa: E402
from realisid_core.faces.analyzer import get_analyzer  # noqa: E402
from realisid_core.faces.packs import PACKS, find_pack_folder  # noqa: E402

IMAGES = Path(insightface.__file__).parent / "data" / "images"
TOL = dict(rtol=1e-4, atol=1e-3)


def real_photos():
    """The group photo t1.jpg (1280×886), the Tom Hanks portrait, the astronaut (RGB → BGR)."""
    tom = next(IMAGES.glob("Tom_Hanks*"))
    return [cv2.imread(str(IMAGES / "t1.jpg")), cv2.imread(str(tom)),
            np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])]


def painted_photos(size=640):
    """Painted faces on real photos and plain ones; the last is seen at detection size `size`."""
    astronaut = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    group = cv2.imread(str(IMAGES / "t1.jpg"))
    return [paint_face(paint_face(astronaut, 384, 128, 56), 128, 384, 64),
            paint_face(paint_face(paint_face(group, 300, 200, 120), 900, 500, 140), 620, 260, 90),
            paint_face(np.full((640, 640, 3), 90, np.uint8), 384, 384, 256),
            paint_face(np.zeros((300, 200, 3), np.uint8), 100, 140, 60),
            paint_face(np.full((2 * size, 2 * size, 3), 40, np.uint8), 192, 192, 128)]


def insightface_models(pack):
    folder = find_pack_folder([fake_insightface_root()], pack, "test")
    layout = PACKS[pack]
    files = {"detection": layout.detection, "recognition": layout.recognition,
             "landmark_3d_68": layout.landmark_3d_68, "landmark_2d_106": layout.landmark_2d_106}
    models = {}
    for task, file in files.items():
        model = model_zoo.get_model(os.path.join(folder, file), providers=["CPUExecutionProvider"])
        model.prepare(ctx_id=0, input_size=(640, 640)) if task == "detection" else model.prepare(ctx_id=0)
        models[task] = model
    return folder, models


@pytest.fixture(scope="module", params=list(PACKS))
def both(request):
    folder, theirs = insightface_models(request.param)
    ours = get_analyzer(folder, request.param, "CPU", 640)
    return ours, theirs


def assert_same_detections(ours, theirs):
    (b1, k1), (b2, k2) = ours, theirs
    assert b1.shape == b2.shape and k1.shape == k2.shape
    np.testing.assert_allclose(b1, b2, **TOL)
    np.testing.assert_allclose(k1, k2, **TOL)


@pytest.mark.parametrize("size", [640, 320, 160])
def test_detections_equal_insightface_on_painted_faces(both, size):
    ours, theirs = both
    found = 0
    for picture in painted_photos(size):
        for threshold in (0.5, 0.2):
            mine = ours.models["detection"].detect(picture, input_size=(size, size), max_num=0, threshold=threshold)
            assert_same_detections(mine, theirs["detection"].detect(picture, input_size=(size, size), max_num=0,
                                                                    det_thresh=threshold))
            found += mine[0].shape[0]
    assert found > 0  # the comparison saw faces


def test_detections_equal_insightface_on_real_photos_with_many_candidates(both):
    """At a threshold under every anchor's score, hundreds of candidates go through NMS."""
    ours, theirs = both
    for picture in real_photos():
        for size in (640, 320):
            mine = ours.models["detection"].detect(picture, input_size=(size, size), threshold=1e-6)
            assert mine[0].shape[0] > 10
            assert_same_detections(mine, theirs["detection"].detect(picture, input_size=(size, size), det_thresh=1e-6))


def test_max_num_keeps_the_same_faces_as_insightface(both):
    ours, theirs = both
    picture = painted_photos()[1]
    for max_num in (1, 2):
        mine = ours.models["detection"].detect(picture, input_size=(640, 640), max_num=max_num, threshold=1e-6)
        assert mine[0].shape[0] == max_num
        assert_same_detections(mine, theirs["detection"].detect(picture, input_size=(640, 640), max_num=max_num,
                                                                det_thresh=1e-6))


def face_regions():
    """(picture, box, keypoints) on real photos: boxes around faces and 5 keypoints placed in them, and
    the detector's own faces on a painted photo."""
    out = []
    rng = np.random.default_rng(0)
    for picture in real_photos():
        h, w = picture.shape[:2]
        for _ in range(3):
            side = rng.uniform(0.15, 0.4) * min(h, w)
            cx, cy = rng.uniform(side, w - side), rng.uniform(side, h - side)
            box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 0.9], np.float32)
            offsets = np.array([[-0.2, -0.1], [0.2, -0.1], [0, 0.05], [-0.15, 0.25], [0.15, 0.25]])
            angle = rng.uniform(-0.4, 0.4)
            turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            kps = (np.array([cx, cy]) + side * offsets @ turn.T + rng.normal(0, 2, (5, 2))).astype(np.float32)
            out.append((picture, box, kps))
    return out


def test_alignment_matrix_equals_skimage_similarity_and_insightface_norm_crop():
    for picture, _, kps in face_regions():
        np.testing.assert_allclose(alignment.arcface_matrix(kps), face_align.estimate_norm(kps), rtol=1e-5, atol=1e-4)
        ours = alignment.warp(picture, alignment.arcface_matrix(kps), 112).astype(int)
        theirs = face_align.norm_crop(picture, kps).astype(int)
        assert np.mean(np.abs(ours - theirs)) < 0.05 and np.max(np.abs(ours - theirs)) <= 1
    from skimage.transform import SimilarityTransform
    rng = np.random.default_rng(1)
    for _ in range(20):
        src, dst = rng.normal(size=(5, 2)) * 50, rng.normal(size=(5, 2)) * 50  # reflections included
        if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
            expected = SimilarityTransform.from_estimate(src, dst)
        else:
            expected = SimilarityTransform()
            expected.estimate(src, dst)
        np.testing.assert_allclose(alignment.umeyama(src, dst), expected.params, rtol=1e-9, atol=1e-9)


def test_embeddings_equal_insightface_on_real_photos_and_detected_faces(both):
    ours, theirs = both
    cases = face_regions()
    picture = painted_photos()[0]
    boxes, kpss = ours.detect(picture)
    cases += [(picture, boxes[i], kpss[i]) for i in range(boxes.shape[0])]
    assert boxes.shape[0] == 2
    for picture, box, kps in cases:
        theirs_embedding = theirs["recognition"].get(picture, Face(bbox=box[:4], kps=kps, det_score=box[4]))
        np.testing.assert_allclose(ours.models["recognition"].embed(picture, kps), theirs_embedding, rtol=1e-3, atol=1e-3)


def test_landmarks_and_pose_equal_insightface(both):
    ours, theirs = both
    picture = painted_photos()[0]
    boxes, kpss = ours.detect(picture)
    cases = face_regions() + [(picture, boxes[i], kpss[i]) for i in range(boxes.shape[0])]
    for picture, box, kps in cases:
        face = Face(bbox=box[:4], kps=kps, det_score=box[4])
        for task in ("landmark_3d_68", "landmark_2d_106"):
            expected = theirs[task].get(picture, face)
            np.testing.assert_allclose(ours.models[task].find(picture, box[:4]), expected, rtol=1e-4, atol=2e-3)
        np.testing.assert_allclose(ours.models["landmark_3d_68"].pose(face.landmark_3d_68), face.pose, atol=1e-3)
    # the analyzer puts them together the same way
    face = ours.analyze(picture)[0]
    expected = Face(bbox=face.box, kps=face.keypoints, det_score=face.score)
    for task in ("landmark_3d_68", "landmark_2d_106", "recognition"):
        theirs[task].get(picture, expected)
    np.testing.assert_allclose(face.landmarks_3d_68, expected.landmark_3d_68, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(face.pose, expected.pose, atol=1e-3)
    np.testing.assert_allclose(face.embedding, expected.embedding / np.linalg.norm(expected.embedding), atol=1e-5)


def test_head_pose_and_mean_face_equal_insightface():
    from insightface.data import get_object
    mean = np.asarray(get_object("meanshape_68.pkl"))
    assert np.array_equal(pose.mean_face_68(), mean) and pose.mean_face_68().dtype == mean.dtype
    rng = np.random.default_rng(2)
    for _ in range(20):
        angles = np.deg2rad(rng.uniform(-60, 60, 3))
        turn = cv2.Rodrigues(angles)[0]
        points = (mean @ turn.T) * rng.uniform(50, 300) + rng.uniform(0, 500, 3) + rng.normal(0, 0.01, (68, 3))
        P = if_transform.estimate_affine_matrix_3d23d(mean, points.astype(np.float32))
        expected = if_transform.matrix2angle(if_transform.P2sRt(P)[1])
        np.testing.assert_allclose(pose.head_pose_68(points.astype(np.float32)), expected, atol=1e-6)


def test_model_normalisation_is_read_from_the_first_nodes_as_insightface_does(tmp_path):
    """A converted mxnet model subtracts and multiplies itself (first nodes 'Sub…', 'Mul…'): no normalisation."""
    import onnx
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    plain = tmp_path / "plain.onnx"
    build_recogniser(str(plain), seed=0)
    mxnet = tmp_path / "mxnet.onnx"
    model = onnx.load(str(plain))
    for node, name in zip(model.graph.node, ("_minus0", "_mul0")):
        node.name = name
    onnx.save(model, str(mxnet))
    for path in (plain, mxnet):
        names = onnx_models.first_node_names(str(path))
        assert names == tuple(n.name for n in onnx.load(str(path)).graph.node[:8])
        theirs = ArcFaceONNX(model_file=str(path))
        assert onnx_models.normalisation(names, landmark=False) == (theirs.input_mean, theirs.input_std)
    assert onnx_models.normalisation(("_minus0", "_mul0"), landmark=False) == (0.0, 1.0)
    assert onnx_models.normalisation(("node1",), landmark=True) == (127.5, 128.0)
    assert onnx_models.normalisation(("x", "bn_data"), landmark=True) == (0.0, 1.0)


def test_blob_equals_opencvs_blob_from_image():
    picture = real_photos()[0][:200, :300]
    expected = cv2.dnn.blobFromImage(picture, 1.0 / 128, (300, 200), (127.5, 127.5, 127.5), swapRB=True)
    np.testing.assert_allclose(onnx_models.to_blob([picture], 127.5, 128.0), expected, atol=1e-6)
