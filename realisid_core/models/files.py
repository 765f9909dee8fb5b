"""Weight files a user hands the pack: one reader, one wording for what is wrong with them.

Every model file the pack opens goes through here: ControlNets (RealisID Load ControlNet), ID
projectors, InstantID's adapter. What a file can be, and what it gets:

- not there, a folder, a symlink loop, unreadable: refused, naming the path and the problem;
- `.safetensors`: the header is checked from the file's first bytes and size before safetensors
  reads it (empty, truncated, not a safetensors file at all, a pickle renamed .safetensors);
- a torch pickle (`.pt`, `.pth`, `.ckpt`, `.bin`): read ONLY with `torch.load(weights_only=True)`.
  A pickle that would build Python objects other than tensors and plain containers (and so
  could run code) is refused and never run; the message says so, found by the exception's type
  and a scan of the pickle's opcodes for the globals it names (torch's own wording changes
  between versions, so no part of the message is relied on).

Errors are RealisIDInputError naming the file (its base name), the problem and the fix; the
node is added by the caller.
"""
from __future__ import annotations

import errno
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile

import torch

from ..errors import RealisIDInputError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pt2")
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header
_MAX_SCAN = 256 * 2**20    # how much of a legacy torch file the pickle scan reads
HOLDS_CODE = ("holds code / pickled objects other than tensors ({names}); it was refused and nothing in it was run "
              "(loading it could run code)")


def is_safetensors(path: str) -> bool:
    return path.lower().endswith(SAFETENSORS_SUFFIXES)


def _error(path: str, problem: str, fix: str, input_name: str, node: str | None) -> RealisIDInputError:
    return RealisIDInputError(input_name=input_name, problem=f"{os.path.basename(path) or path} {problem}",
                              fix=fix)


def check_file(path: str, input_name: str, fix: str, node: str | None = None) -> None:
    """Refuse a path that is not a readable regular file (missing, a folder, a symlink loop, no permission)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _error(path, f"is a symbolic link that loops back on itself ({path})", fix, input_name, node) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            what = "is a symbolic link to nothing" if os.path.islink(path) else "does not exist"
            raise _error(path, f"{what} ({path})", fix, input_name, node) from None
        raise _error(path, f"cannot be opened ({exc.strerror or exc})", fix, input_name, node) from None
    if os.path.isdir(path):
        raise _error(path, f"is a folder, not a file ({path}); a model in diffusers' folder layout is loaded from "
                     "the .safetensors file inside it", fix, input_name, node)
    if not os.path.isfile(path):
        raise _error(path, f"is not a regular file ({path})", fix, input_name, node)
    if not os.access(path, os.R_OK):
        raise _error(path, f"cannot be read (no permission: {path})", fix, input_name, node)


def _looks_like_pickle(head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def safetensors_problem(path: str) -> str | None:
    """Why `path` cannot be a complete safetensors file (read from its first bytes and size), or None.

    A safetensors file is an 8-byte little-endian header length N, N bytes of JSON naming
    each tensor's byte range, then the data those ranges cover.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if _looks_like_pickle(head):
            return "is a PyTorch pickle checkpoint (torch.save, .pt/.ckpt/.bin), not a safetensors file"
        if size == 0:
            return "is empty (0 bytes): not a safetensors file, or a download that never started"
        if len(head) < 8:
            return f"is {size} bytes, too short for a safetensors file (truncated)"
        (header_len,) = struct.unpack("<Q", head)
        if header_len > _MAX_HEADER or header_len < 2:
            return (f"is not a safetensors file (its first bytes {head[:8]!r} are no safetensors header; "
                    f"a safetensors file starts with its header's length)")
        if 8 + header_len > size:
            return (f"is truncated: its header says {header_len:,} bytes of metadata follow but the file has only "
                    f"{size - 8:,} bytes after the first 8")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "is not a safetensors file, or is corrupt (its header is not the JSON a safetensors file starts with)"
    if not isinstance(header, dict):
        return "is corrupt (its safetensors header is not a table of tensors)"
    ends = []
    for key, value in header.items():
        if key == "__metadata__":
            if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                return "is corrupt (its safetensors metadata is not a table of texts)"
            continue
        offsets = value.get("data_offsets") if isinstance(value, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)
                and isinstance(value.get("shape"), list) and all(type(d) is int and d >= 0 for d in value["shape"])):
            return f"is corrupt (its safetensors header entry for '{str(key)[:80]}' has no valid shape and byte range)"
        ends.append(offsets[1])
    end = max(ends, default=0)
    if 8 + header_len + end > size:
        return (f"is truncated: its tensors need {8 + header_len + end:,} bytes but the file has {size:,} "
                f"(an interrupted download or copy)")
    return None


def _read_header(path: str) -> dict:
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(header_len))


def _checked_safetensors(path: str, input_name: str, fix: str, node: str | None, pickle_fix: str | None) -> None:
    check_file(path, input_name, fix, node)
    problem = safetensors_problem(path)
    if problem is not None:
        raise _error(path, problem, pickle_fix if pickle_fix and "pickle" in problem else fix, input_name, node)


def safetensors_header(path: str, input_name: str, fix: str, node: str | None = None,
                       pickle_fix: str | None = None) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(tensor name → shape, metadata) of a safetensors file, read from its header alone (no tensor is loaded)."""
    _checked_safetensors(path, input_name, fix, node, pickle_fix)
    header = _read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    return {k: tuple(v["shape"]) for k, v in header.items()}, metadata


def read_safetensors(path: str, input_name: str, fix: str, node: str | None = None,
                     pickle_fix: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file on the CPU, after the header check; `pickle_fix`: the fix for a
    pickle renamed .safetensors (default `fix`)."""
    from safetensors.torch import load_file

    _checked_safetensors(path, input_name, fix, node, pickle_fix)
    try:
        return load_file(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 — safetensors' own error for anything the header check did not see
        raise _error(path, f"could not be read as a safetensors file ({str(exc)[:200]})", fix, input_name,
                     node) from None


# ---- torch pickles -----------------------------------------------------------------------------------

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}


def _pickle_streams(path: str) -> list[tuple[bytes, int]]:
    """(bytes, how many pickles) of a torch file: each `*.pkl` of the zip format (one pickle), or the
    legacy file (magic number, protocol, system info, the object, storage keys: five pickles)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return [(z.read(n), 1) for n in z.namelist() if n.endswith(".pkl")]
    with open(path, "rb") as f:  # the pickles come first; the tensor bytes after them are not needed
        return [(f.read(_MAX_SCAN), 5)]


def pickle_globals(data: bytes, streams: int = 1) -> list[str]:
    """Every 'module.name' the first `streams` pickles in `data` would import (GLOBAL, STACK_GLOBAL, INST).

    A static scan (pickletools): nothing is built or run. STACK_GLOBAL takes its two names from the
    strings pushed (or fetched from the memo) just before it, which is how Python's pickler writes them.
    ValueError where the first pickle is not a complete one; a later one that is not ends the scan
    (torch's legacy format puts raw tensor bytes after its pickles)."""
    names, stream = [], io.BytesIO(data)
    for n in range(streams):
        if stream.tell() >= len(data):
            break
        strings, memo, found = [], {}, []
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in _STRING_OPS:
                    strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("PUT", "BINPUT", "LONG_BINPUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    strings.append(memo.get(int(arg), ""))
                elif op.name in ("GLOBAL", "INST"):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    found.append(".".join(strings[-2:]) if len(strings) >= 2 else "?")
        except Exception as exc:  # noqa: BLE001 — pickletools raises ValueError and others on damaged data
            if n == 0:
                raise ValueError(f"not a complete pickle ({exc})") from None
            break
        names += found
    return names


def _allowed_globals() -> set[str]:
    """The names torch's weights-only unpickler builds (tensors, storages, plain containers)."""
    try:
        from torch import _weights_only_unpickler
        allowed = set(_weights_only_unpickler._get_allowed_globals())
    except Exception:  # noqa: BLE001 — a private torch API: fall back to the rule it implements
        allowed = set()
    try:
        allowed |= {f"{g.__module__}.{g.__qualname__}" for g in torch.serialization.get_safe_globals()
                    if hasattr(g, "__qualname__")}
    except Exception:  # noqa: BLE001
        pass
    return allowed


def _is_allowed(name: str, allowed: set[str]) -> bool:
    if allowed:
        return name in allowed or name.startswith("torch.") and name.rsplit(".", 1)[-1].endswith("Storage")
    return name.startswith(("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset"))


def code_in_pickle(path: str) -> list[str] | None:
    """The globals a torch file's pickle names that the weights-only unpickler would not build (the objects
    that could run code), [] when it names none, None when the file cannot be scanned as a pickle."""
    try:
        names = [n for data, count in _pickle_streams(path) for n in pickle_globals(data, count)]
    except Exception:  # noqa: BLE001 — not a pickle, or a damaged one: the caller says so
        return None
    allowed = _allowed_globals()
    return list(dict.fromkeys(n for n in names if not _is_allowed(n, allowed)))


def torch_file_problem(path: str) -> str | None:
    """Why `path` cannot be a torch file (from its size and first bytes), or None."""
    size = os.path.getsize(path)
    if size == 0:
        return "is empty (0 bytes): not a torch file, or a download that never started"
    with open(path, "rb") as f:
        head = f.read(8)
    if not _looks_like_pickle(head):
        if len(head) == 8 and 2 <= struct.unpack("<Q", head)[0] <= min(_MAX_HEADER, size) and \
                safetensors_problem(path) is None:
            return "is a safetensors file with another name (rename it to .safetensors)"
        return f"is not a torch file (its first bytes {head!r} start no torch.save file)"
    return None


def read_torch_pickle(path: str, input_name: str, fix: str, node: str | None = None,
                      code_fix: str | None = None):
    """What a torch.save file holds, read with `torch.load(weights_only=True)` on the CPU.

    A file that holds code (pickled objects other than tensors) is refused without running anything:
    `code_fix` is the fix then (default `fix`)."""
    check_file(path, input_name, fix, node)
    problem = torch_file_problem(path)
    if problem is not None:
        raise _error(path, problem, fix, input_name, node)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        code = code_in_pickle(path)
        if not code:  # nothing beyond tensors named: the pickle itself is damaged
            raise _error(path, "is a damaged torch file (its pickle cannot be read: truncated or corrupt)", fix,
                         input_name, node) from None
        names = ", ".join(code[:3]) + (", …" if len(code) > 3 else "")
        raise _error(path, HOLDS_CODE.format(names=names), code_fix or fix, input_name, node) from None
    except Exception as exc:  # noqa: BLE001 — EOFError, zip errors, RuntimeError: a truncated or damaged file
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise _error(path, f"is a damaged torch file, truncated or corrupt ({detail})", fix, input_name,
                     node) from None
