"""ID projector: shapes read from a safetensors file, projection to identity tokens, one cached copy per file version."""
import os
import time

import pytest
import torch
from safetensors.torch import save_file

from realisid_core.errors import RealisIDInputError
from realisid_core.models.projector import IDProjector, load_projector, project
from realisid_core.people.identity import mean_identity


def save_projector(path, tokens=4, width=768, prefix="", seed=0):
    torch.manual_seed(seed)
    model = IDProjector(512, tokens, width)
    save_file({prefix + k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model


def test_tokens_and_width_come_from_the_file_and_projection_matches(tmp_path):
    reference = save_projector(tmp_path / "proj.safetensors", tokens=6, width=320, prefix="id_proj.")
    projector = load_projector(str(tmp_path / "proj.safetensors"))
    assert (projector.tokens, projector.width, projector.embedding_width) == (6, 320, 512)
    identity = mean_identity(torch.randn(3, 512), "i")
    tokens = project(projector, identity)
    assert tokens.tokens.shape == (1, 6, 320) and tokens.width == 320
    with torch.no_grad():
        assert torch.allclose(tokens.tokens, reference(identity.embeddings), atol=1e-6)
        # the null identity CFG's unconditional side gets: the projector of a zero embedding
        assert torch.allclose(tokens.null, reference(torch.zeros(1, 512)), atol=1e-6)
    # LayerNorm'ed tokens: zero mean and unit variance per token (before the affine, which starts at identity)
    assert torch.allclose(tokens.tokens.mean(-1), torch.zeros(1, 6), atol=1e-5)


def test_one_copy_per_file_version(tmp_path):
    path = tmp_path / "p.safetensors"
    save_projector(path)
    a, b = load_projector(str(path)), load_projector(str(path))
    assert a is b
    time.sleep(0.01)
    save_projector(path, seed=1)
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert load_projector(str(path)) is not a


def test_a_file_that_is_not_a_projector_is_named(tmp_path):
    save_file({"weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(RealisIDInputError, match=r"input 'projector': other.safetensors is not a RealisID ID projector.*Fix:"):
        load_projector(str(tmp_path / "other.safetensors"))


def test_embedding_width_mismatch_is_an_error(tmp_path):
    with pytest.raises(RealisIDInputError, match="512-wide embeddings but the projector takes 128"):
        project(IDProjector(128, 2, 64), mean_identity(torch.randn(1, 512), "i"))


def test_a_projector_nothing_uses_is_freed(tmp_path):
    import gc
    import weakref
    save_projector(tmp_path / "p.safetensors")
    ref = weakref.ref(load_projector(str(tmp_path / "p.safetensors")))
    gc.collect()
    assert ref() is None


def test_raw_projection_feeds_the_recogniser_length():
    """InstantID's projector takes raw recogniser vectors: their length is kept through the photos' mean."""
    projector = IDProjector(512, 2, 64).eval()
    raw = torch.nn.functional.normalize(torch.randn(3, 512), dim=-1) * torch.tensor([[20.0], [24.0], [28.0]])
    identity = mean_identity(raw, "i", norms=raw.norm(dim=-1))
    assert torch.allclose(identity.raw().norm(), torch.tensor(24.0))
    with torch.no_grad():
        expected = projector(identity.raw())
    assert torch.allclose(project(projector, identity, raw=True).tokens, expected, atol=1e-5)
    assert not torch.allclose(project(projector, identity).tokens, expected, atol=1e-3)


# --- files that are not complete safetensors files (issue 11 item 10) ---

def _truncated(tmp_path, keep):
    path = tmp_path / "cut.safetensors"
    save_projector(path)
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])
    return path


@pytest.mark.parametrize("zipfile", [True, False])
def test_a_pickle_checkpoint_is_named_as_a_pickle(tmp_path, zipfile):
    path = tmp_path / "projector.bin"
    torch.save(IDProjector(512, 4, 768).state_dict(), str(path), _use_new_zipfile_serialization=zipfile)
    with pytest.raises(RealisIDInputError, match=r"input 'projector_name': projector.bin is a PyTorch pickle.*"
                                                 r"Fix: convert it to .safetensors"):
        load_projector(str(path))


@pytest.mark.parametrize("keep,problem", [
    (lambda n: n - 100, r"cut.safetensors is truncated: its tensors need"),
    (lambda n: 20, r"cut.safetensors is truncated: its header says"),
    (lambda n: 5, r"cut.safetensors is 5 bytes, too short"),
    (lambda n: 0, r"cut.safetensors is empty"),
])
def test_a_truncated_file_is_named_as_truncated(tmp_path, keep, problem):
    with pytest.raises(RealisIDInputError, match=problem + r".*Fix: download or export the ID projector again"):
        load_projector(str(_truncated(tmp_path, keep)))


def test_random_bytes_are_not_a_safetensors_file(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(bytes(range(256)) * 64)  # safetensors itself says "header too large"
    with pytest.raises(RealisIDInputError, match=r"noise.safetensors is not a safetensors file"):
        load_projector(str(path))
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"not json at all!" + b"\x00" * 32)
    with pytest.raises(RealisIDInputError, match=r"noise.safetensors is not a safetensors file, or is corrupt"):
        load_projector(str(path))


def test_the_loader_offers_only_safetensors_files(monkeypatch):
    from fixtures.host import HOST_PRESENT, NO_HOST_REASON
    if not HOST_PRESENT:
        pytest.skip(NO_HOST_REASON)
    from fixtures.host import pack_module
    node = pack_module("nodes.id_projector")
    monkeypatch.setattr(node.folder_paths, "get_filename_list",
                        lambda folder: ["a.safetensors", "b.pt", "c.ckpt", "sub/d.SAFETENSORS", "e.bin", "f.pth"])
    assert node.RealisIDIDProjectorLoader.INPUT_TYPES()["required"]["projector_name"][0] == [
        "a.safetensors", "sub/d.SAFETENSORS"]
