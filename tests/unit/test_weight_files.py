"""The one weight-file reader (realisid_core/models/files.py): every class of broken or hostile file gets
a RealisIDInputError naming the file and what is wrong, never a raw exception, and nothing in a pickle
that carries code is ever run. Pickles are made with the torch of this environment."""
import os
import pathlib
import random

import pytest
import torch
from safetensors.torch import save_file

from realisid_core.errors import RealisIDInputError
from realisid_core.models import files
from realisid_core.models.instantid import load_adapter
from realisid_core.models.projector import load_projector

FIX = "the fix"


class WritesAFile:
    """Unpickling this calls Path.write_text: code a weights-only reader must never run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "the pickle ran code")


class CallsSystem:
    def __reduce__(self):
        return os.system, ("true",)


def refused(read, path) -> str:
    with pytest.raises(RealisIDInputError) as caught:
        read(str(path))
    return str(caught.value)


def read_pickle(path):
    return files.read_torch_pickle(path, "model", FIX)


def read_st(path):
    return files.read_safetensors(path, "model", FIX)


@pytest.mark.parametrize("zipped", [True, False])
@pytest.mark.parametrize("payload", ["write", "system"])
def test_a_pickle_carrying_code_is_described_as_holding_code_and_never_runs(tmp_path, zipped, payload):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2), "x": WritesAFile(marker) if payload == "write" else CallsSystem()}, path,
               _use_new_zipfile_serialization=zipped)
    message = refused(read_pickle, path)
    assert not marker.exists()
    assert "model.pth holds code / pickled objects other than tensors (" in message
    assert ("pathlib.Path" if payload == "write" else "system") in message
    assert "refused and nothing in it was run" in message
    # not torch's advice, not the wrong diagnosis
    assert "weights_only" not in message and "not a readable" not in message and "again" not in message


def test_the_scan_names_only_what_the_weights_only_reader_would_not_build(tmp_path):
    path = tmp_path / "clean.pt"
    torch.save({"w": torch.zeros(2, 3), "nested": {"b": torch.ones(1)}, "n": 3}, path)
    assert files.code_in_pickle(str(path)) == []
    assert torch.equal(read_pickle(path)["w"], torch.zeros(2, 3))
    torch.save({"w": torch.zeros(2), "x": CallsSystem()}, path)
    assert any("system" in name for name in files.code_in_pickle(str(path)))


@pytest.mark.parametrize("zipped", [True, False])
def test_a_truncated_torch_file_is_named_damaged_at_every_cut(tmp_path, zipped):
    whole = tmp_path / "whole.pt"
    torch.save({"w": torch.randn(64, 64)}, whole, _use_new_zipfile_serialization=zipped)
    data = whole.read_bytes()
    cut = tmp_path / "cut.pt"
    for keep in sorted({1, 8, 64, 200, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 1}):
        cut.write_bytes(data[:keep])
        message = refused(read_pickle, cut)
        assert "cut.pt" in message and ("damaged" in message or "not a torch file" in message), (keep, message)
        assert "holds code" not in message


@pytest.mark.parametrize("reader", [read_pickle, read_st])
def test_a_zero_byte_file_is_called_empty(tmp_path, reader):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    message = refused(reader, path)
    assert "empty.bin is empty (0 bytes)" in message


def test_an_empty_adapter_file_says_empty_and_does_not_end_in_empty_brackets(tmp_path):
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(b"")
    message = refused(load_adapter, path)
    assert "ip-adapter.bin is empty (0 bytes)" in message and "()" not in message


def test_wrong_magic_is_named(tmp_path):
    path = tmp_path / "photo.pth"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert "photo.pth is not a torch file" in refused(read_pickle, path)


def test_a_safetensors_file_with_a_pickle_suffix_is_named(tmp_path):
    path = tmp_path / "weights.bin"
    save_file({"w": torch.zeros(3)}, str(path))
    assert "is a safetensors file with another name" in refused(read_pickle, path)


def test_a_pickle_with_a_safetensors_suffix_is_named(tmp_path):
    path = tmp_path / "weights.safetensors"
    torch.save({"w": torch.zeros(3)}, path)
    assert "weights.safetensors is a PyTorch pickle checkpoint" in refused(read_st, path)


@pytest.mark.parametrize("reader", [read_pickle, read_st])
def test_a_folder_a_missing_file_and_symlink_loops_are_named(tmp_path, reader):
    (tmp_path / "folder.safetensors").mkdir()
    assert "is a folder, not a file" in refused(reader, tmp_path / "folder.safetensors")
    assert "does not exist" in refused(reader, tmp_path / "nowhere.pth")
    loop_a, loop_b = tmp_path / "a.pth", tmp_path / "b.pth"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    assert "a.pth is a symbolic link that loops back on itself" in refused(reader, loop_a)
    dangling = tmp_path / "dangling.pth"
    dangling.symlink_to(tmp_path / "gone.pth")
    assert "dangling.pth is a symbolic link to nothing" in refused(reader, dangling)


def test_safetensors_headers_with_wrong_shapes_of_entries_are_corrupt(tmp_path):
    import json
    import struct
    path = tmp_path / "odd.safetensors"
    for header in ({"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}},
                   {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}},
                   {"w": [1, 2]},
                   {"__metadata__": {"a": 1}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}):
        raw = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
        assert "odd.safetensors is corrupt" in refused(read_st, path), header


def test_random_bytes_never_raise_anything_but_a_clear_error(tmp_path):
    """Fuzz: random files, random prefixes of real files, with both readers."""
    rng = random.Random(17)
    real = tmp_path / "real.safetensors"
    save_file({"w": torch.randn(8, 8)}, str(real), metadata={"k": "v"})
    pickled = tmp_path / "real.pt"
    torch.save({"w": torch.randn(8, 8)}, pickled)
    sources = [real.read_bytes(), pickled.read_bytes()]
    path = tmp_path / "fuzz.bin"
    for _ in range(150):
        kind = rng.random()
        if kind < 0.4:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        else:
            src = bytearray(rng.choice(sources))
            src = src[:rng.randint(0, len(src))]
            for _ in range(rng.randint(0, 4)):  # flip a few bytes
                if src:
                    src[rng.randrange(len(src))] = rng.getrandbits(8)
            data = bytes(src)
        path.write_bytes(data)
        for reader in (read_pickle, read_st):
            try:
                reader(str(path))
            except RealisIDInputError:
                pass


def test_a_projector_refuses_a_code_carrying_pickle_before_reading_it(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "projector.safetensors"
    torch.save({"x": WritesAFile(marker)}, path)
    message = refused(load_projector, path)
    assert "projector.safetensors is a PyTorch pickle" in message and not marker.exists()


@pytest.mark.parametrize("shapes", [
    {"proj.weight": (64, 512), "proj.bias": (64,), "norm.weight": (0,), "norm.bias": (0,)},      # no width
    {"proj.weight": (64, 512), "proj.bias": (32,), "norm.weight": (16,), "norm.bias": (16,)},    # bias misfit
    {"proj.weight": (64, 512), "proj.bias": (64,), "norm.weight": (16,), "norm.bias": (8,)},
    {"proj.weight": (64,), "proj.bias": (64,), "norm.weight": (16,), "norm.bias": (16,)},
    {"proj.weight": (0, 512), "proj.bias": (0,), "norm.weight": (16,), "norm.bias": (16,)},
])
def test_a_projector_with_inconsistent_shapes_is_named(tmp_path, shapes):
    path = tmp_path / "odd_projector.safetensors"
    save_file({k: torch.zeros(v) for k, v in shapes.items()}, str(path))
    assert "odd_projector.safetensors has inconsistent shapes" in refused(load_projector, path)


@pytest.mark.parametrize("load, name", [(load_projector, "p.safetensors"), (load_adapter, "ip-adapter.bin")])
def test_the_loaders_name_a_symlink_loop_and_a_missing_file(tmp_path, load, name):
    loop = tmp_path / name
    loop.symlink_to(tmp_path / name)
    assert f"{name} is a symbolic link that loops back on itself" in refused(load, loop)
    assert "does not exist" in refused(load, tmp_path / "gone" / name)
