"""The pack inside a real ComfyUI server: loading, full graphs on CPU, and errors users see."""
import numpy as np
import pytest
from PIL import Image

from fixtures.comfy_server import PACK_DIR_NAME, PromptFailed
from fixtures.graphs import Branch, GraphSpec, build

EXPECTED_NODES = {"RealisID_LocationGuidance", "RealisID_ApplyLocalBranch", "RealisID_ApplyGlobalBranch",
                  "RealisID_FaceAnalysisLoader", "RealisID_FaceAnalysis", "RealisID_Identity", "RealisID_IdentityBatch",
                  "RealisID_IDProjectorLoader", "RealisID_IdentityTokens", "RealisID_LoadControlNet",
                  "RealisID_Person", "RealisID_People", "RealisID_PeopleFromLocations",
                  "RealisID_PoseExpression", "RealisID_LocationsFromFaces", "RealisID_LocationsFromMask"}
SD15_LOCAL, SD15_GLOBAL = "tiny_sd15_local.safetensors", "tiny_sd15_global.safetensors"
SD15_PLAIN = "tiny_sd15_cn_c.safetensors"


def pixels(server, spec):
    files = server.images(server.run(build(spec)))
    assert len(files) == spec.batch
    return np.stack([np.asarray(Image.open(f)) for f in files])


@pytest.fixture(scope="module")
def baseline(server):
    return pixels(server, GraphSpec("baseline"))


def test_pack_loads_through_comfyuis_custom_node_loader(server):
    info = server.object_info()
    registered = {k for k in info if k.startswith("RealisID_")}
    assert EXPECTED_NODES <= registered
    assert all(info[k]["category"].startswith("RealisID/") for k in registered)
    loaders = {k for k in registered if "Load" in info[k]["display_name"]}
    assert loaders and all(info[k]["category"] == "RealisID/loaders" for k in loaders)
    for k in registered:  # every input has a tooltip in the artist's terms
        for group in ("required", "optional"):
            for name, spec in info[k]["input"].get(group, {}).items():
                if spec[0] not in ("CONDITIONING", "MODEL", "LATENT") and name not in ("positive", "negative"):
                    assert len(spec) > 1 and spec[1].get("tooltip"), f"{k}.{name} has no tooltip"
    log = server.log()
    assert "IMPORT FAILED" not in "\n".join(l for l in log.splitlines() if PACK_DIR_NAME in l), log[-3000:]
    assert "RealisID: nodes in" not in log, log[-3000:]


def test_global_and_local_branch_change_the_picture(server, baseline):
    steered = pixels(server, GraphSpec("steered", global_branch=Branch(SD15_GLOBAL), local_branch=Branch(SD15_LOCAL)))
    assert steered.shape == baseline.shape == (1, 128, 128, 3)
    assert np.abs(steered.astype(int) - baseline.astype(int)).mean() > 1.0
    local_only = pixels(server, GraphSpec("local_only", local_branch=Branch(SD15_LOCAL)))
    assert not np.array_equal(local_only, baseline) and not np.array_equal(local_only, steered)


def test_strength_zero_is_bit_identical_to_no_control(server, baseline):
    spec = GraphSpec("strength0", global_branch=Branch(SD15_GLOBAL, strength=0.0),
                     local_branch=Branch(SD15_LOCAL, strength=0.0))
    assert np.array_equal(pixels(server, spec), baseline)


def test_window_outside_the_run_is_bit_identical_to_no_control(server, baseline):
    spec = GraphSpec("window", global_branch=Branch(SD15_GLOBAL, start=1.0, end=1.0),
                     local_branch=Branch(SD15_LOCAL, start=1.0, end=1.0))
    assert np.array_equal(pixels(server, spec), baseline)


def test_batch_of_two_with_cfg(server):
    plain = pixels(server, GraphSpec("batch_plain", batch=2, cfg=3.0))
    steered = pixels(server, GraphSpec("batch_steered", batch=2, cfg=3.0, global_branch=Branch(SD15_GLOBAL),
                                       local_branch=Branch(SD15_LOCAL)))
    assert steered.shape == (2, 128, 128, 3)
    assert not np.array_equal(steered[0], steered[1])
    for i in range(2):
        assert np.abs(steered[i].astype(int) - plain[i].astype(int)).mean() > 1.0


def test_three_controlnets_in_one_chain_run(server, baseline):
    spec = GraphSpec("three", plain_controlnet=Branch(SD15_PLAIN), global_branch=Branch(SD15_GLOBAL),
                     local_branch=Branch(SD15_LOCAL))
    assert not np.array_equal(pixels(server, spec), baseline)


def test_eight_people_each_placed_explicitly(server, baseline):
    """Eight Person nodes, person k given its place as a box (no counting from the left), gathered in order."""
    from comfy_execution.graph_utils import GraphBuilder
    graph = build(GraphSpec("eight", local_branch=Branch(SD15_LOCAL)))
    g = GraphBuilder(prefix="p")
    persons = {f"person_{k}": g.node("RealisID_Person", location_number=1, strength=1.0,
                                     box=f"{0.12 + 0.11 * (k - 1):.2f} {0.8 - 0.08 * (k - 1):.2f} 0.1 0.1").out(0)
               for k in range(1, 9)}
    gathered = g.node("RealisID_People", **persons)
    g.node("PreviewImage", images=gathered.out(1))
    extra = g.finalize()
    graph.update(extra)
    local = next(k for k, v in graph.items() if v["class_type"] == "RealisID_ApplyLocalBranch")
    graph[local]["inputs"]["people"] = [next(k for k, v in extra.items() if v["class_type"] == "RealisID_People"), 0]
    files = server.images(server.run(graph))
    picture = np.asarray(Image.open(files[0]))
    assert picture.shape == (128, 128, 3) and not np.array_equal(picture, baseline[0])


def test_sdxl_shaped_model(server):
    plain = pixels(server, GraphSpec("sdxl_plain", sdxl=True))
    steered = pixels(server, GraphSpec("sdxl_steered", sdxl=True, local_branch=Branch("tiny_sdxl_local.safetensors")))
    assert np.abs(steered.astype(int) - plain.astype(int)).mean() > 1.0


def test_controlnet_of_another_family_fails_before_sampling_with_a_clear_error(server):
    spec = GraphSpec("mismatch", local_branch=Branch("tiny_sdxl_local.safetensors"))
    with pytest.raises(PromptFailed) as err:
        server.run(build(spec))
    message = err.value.details["exception_message"]
    assert "RealisID Apply Local Branch: input 'control_net'" in message
    assert "SDXL" in message and "SD1.5" in message and "Fix:" in message


def test_a_controlnet_loaded_without_its_description_is_a_clear_error(server):
    with pytest.raises(PromptFailed) as err:
        server.run(build(GraphSpec("undescribed", local_branch=Branch(SD15_LOCAL), loader="ControlNetLoader")))
    message = err.value.details["exception_message"]
    assert "input 'control_net'" in message and "RealisID Load ControlNet" in message and "Fix:" in message


def test_box_outside_the_picture_is_a_clear_error(server):
    with pytest.raises(PromptFailed) as err:
        server.run(build(GraphSpec("outside", local_branch=Branch(SD15_LOCAL), locations="1.7 0.5 0.2\n0.5 0.5 0.2")))
    message = err.value.details["exception_message"]
    assert "RealisID Location Guidance: input 'locations': face 1 of 2 lies entirely outside" in message


def test_missing_controlnet_file_is_refused_before_running(server):
    with pytest.raises(PromptFailed) as err:
        server.submit(build(GraphSpec("missing", local_branch=Branch("no_such_controlnet.safetensors"))))
    assert "no_such_controlnet.safetensors" in str(err.value) and "control_net_name" in str(err.value)
