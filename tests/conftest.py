"""Shared test set-up: the repository on sys.path for realisid_core, and the ComfyUI host.

The host is found through COMFYUI_PATH, else ~/comfy/ComfyUI. Tests under tests/integration
are skipped, with the reason printed, when no host is found.
"""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tests"):  # realisid_core; the tests' own `fixtures` package
    if str(path) not in sys.path:
        sys.path.append(str(path))

from fixtures.host import HOST, HOST_PRESENT, NO_HOST_REASON, use_host  # noqa: E402
if HOST_PRESENT:
    use_host(HOST)  # in-process ComfyUI runs on the CPU, as the test server does with --cpu


class _PackRootIsAFolder:
    """pytest collects a folder holding an `__init__.py` as a Python package and imports that file
    first. The repository's `__init__.py` is the ComfyUI custom node, not a test package: imported
    under the clone's folder name it fails whenever that name is not a Python identifier (the usual
    `ComfyUI-RealisID`, a space) and, where it is one, puts the clone's parent folder (ComfyUI's
    custom_nodes/) on sys.path. So the repository's root is collected as a plain folder; ComfyUI's
    own loader (fixtures.host.load_pack) is the one place the pack is imported as a package."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if path.resolve() == REPO:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    # registered as a plugin, not a conftest hook: conftest hooks only see paths below their folder,
    # and the repository's root is above tests/
    config.pluginmanager.register(_PackRootIsAFolder(), "realisid-pack-root-is-a-folder")


def pytest_report_header(config):
    return f"ComfyUI host: {HOST if HOST_PRESENT else 'not found — ' + NO_HOST_REASON}"


def pytest_collection_modifyitems(config, items):
    if HOST_PRESENT:
        return
    skip = pytest.mark.skip(reason=NO_HOST_REASON)
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not HOST_PRESENT:
        terminalreporter.write_line(f"SKIPPED integration tests: {NO_HOST_REASON}", yellow=True)


@pytest.fixture(scope="session")
def tiny():
    """Generated random-weight models in real formats, by role (paths); built once and cached."""
    if not HOST_PRESENT:
        pytest.skip(NO_HOST_REASON)
    from fixtures import tiny_models
    from realisid_core.models.description import BranchDescription
    files = {"sd15": tiny_models.sd15_checkpoint(), "sd15_cn": tiny_models.sd15_controlnet(),
             "sd15_cn_b": tiny_models.sd15_controlnet(seed=11), "sd15_cn_c": tiny_models.sd15_controlnet(seed=12),
             "sdxl": tiny_models.sdxl_unet(), "sdxl_cn": tiny_models.sdxl_controlnet()}
    # the same weights as RealisID branches that carry their description, as the trainer exports them
    local = BranchDescription("local", "SD1.5", hint_format="realisid-pose-v1-68", working_size=32, margin=1.6)
    glob = BranchDescription("global", "SD1.5", guidance_format="realisid-location-v1", context="text")
    local_xl = BranchDescription("local", "SDXL", hint_format="realisid-pose-v1-68", working_size=32, margin=1.6)
    for role, source, description in (("sd15_local", "sd15_cn", local), ("sd15_global", "sd15_cn_b", glob),
                                      ("sdxl_local", "sdxl_cn", local_xl)):
        files[role] = tiny_models.described(files[source], description.to_metadata(), f"realisid_test_{role}.safetensors")
    return files


@pytest.fixture(scope="session")
def server(tiny, tmp_path_factory):
    """A real ComfyUI server (--cpu, 127.0.0.1) with the pack installed and the tiny models in its folders."""
    from fixtures.comfy_server import start_server
    models = {"checkpoints/tiny_sd15.safetensors": tiny["sd15"],
              "diffusion_models/tiny_sdxl_vega.safetensors": tiny["sdxl"],
              **{f"controlnet/tiny_{role}.safetensors": tiny[role]
                 for role in ("sd15_cn", "sd15_cn_b", "sd15_cn_c", "sdxl_cn", "sd15_local", "sd15_global", "sdxl_local")}}
    srv = start_server(HOST, tmp_path_factory.mktemp("comfyui"), models)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def workflow_server(server, tiny, tmp_path_factory):
    """The test server, given every file the example workflows name."""
    pytest.importorskip("insightface")
    pytest.importorskip("onnx")
    skimage_data = pytest.importorskip("skimage.data")
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from fixtures.fake_insightface import fake_insightface_root, paint_face
    from fixtures.host import pack_module
    links = {"checkpoints/v1-5-pruned-emaonly-fp16.safetensors": tiny["sd15"],
             "controlnet/realisid_local_sd15.safetensors": tiny["sd15_local"],
             "controlnet/realisid_global_sd15.safetensors": tiny["sd15_global"],
             "insightface/models/antelopev2": Path(fake_insightface_root()) / "models" / "antelopev2"}
    projector = tmp_path_factory.mktemp("projector") / "projector.safetensors"
    torch.manual_seed(0)
    weights = pack_module("realisid_core.models.projector").IDProjector(512, 4, 768).state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(projector))
    links["realisid/realisid_id_projector_sd15.safetensors"] = projector
    from fixtures import instantid_models  # InstantID's files for the SDXL examples, in their published layouts
    links.update({"diffusion_models/realisid_test_vega.safetensors": instantid_models.vega_unet(),
                  "controlnet/instantid_identitynet.safetensors":
                      instantid_models.identitynet_folder(instantid_models.VEGA_VARIANT)
                      / "diffusion_pytorch_model.safetensors",
                  "instantid/ip-adapter.bin": instantid_models.ip_adapter_bin(instantid_models.VEGA_CROSS_ATTENTION)})
    from fixtures import flux_models  # InfiniteYou's files for the FLUX examples, in their published layouts
    links.update({"diffusion_models/flux1-dev.safetensors": flux_models.flux_unet(),
                  "vae/ae.safetensors": flux_models.flux_vae(),
                  "infinite_you/aes_stage2/InfuseNetModel/diffusion_pytorch_model.safetensors":
                      flux_models.infusenet_file(),
                  "infinite_you/aes_stage2/image_proj_model.bin": flux_models.image_proj_bin(),
                  "facexlib/recognition_arcface_ir_se50.pth": flux_models.ir_se50_pth()})
    server.link_models(links)
    astronaut = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    for name, (cx, cy, side) in {"realisid_person_1.png": (384, 128, 60), "realisid_person_2.png": (128, 384, 56),
                                 "realisid_person_3.png": (256, 380, 64), "realisid_pose.png": (256, 256, 64)}.items():
        Image.fromarray(paint_face(astronaut, cx, cy, side)[..., ::-1]).save(server.root / "input" / name)
    group = paint_face(paint_face(paint_face(astronaut, 96, 300, 64), 256, 300, 64), 416, 300, 64)
    Image.fromarray(group[..., ::-1]).save(server.root / "input" / "realisid_group_pose.png")
    return server
