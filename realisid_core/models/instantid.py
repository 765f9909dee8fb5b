"""InstantID's adapter file (`ip-adapter.bin`): the Resampler and one to_k_ip / to_v_ip pair per
cross-attention layer of the U-Net, in diffusers' processor order.

Formats read:
- `ip-adapter.bin` (InstantX/InstantID): a torch pickle of {"image_proj": {...}, "ip_adapter":
  {"1.to_k_ip.weight", "1.to_v_ip.weight", "3.to_k_ip.weight", ...}}, odd n = 1, 3, … (diffusers
  numbers every attention processor; only the cross-attention ones have weights). It is read ONLY
  through `torch.load(weights_only=True)`: a pickle that would build any Python object other than
  tensors and plain containers (and so could run code) is refused and never executed.
- the same dict flattened with `image_proj.` / `ip_adapter.` prefixes, in a pickle or in a
  `.safetensors` file (the converted form some users have).

Sizes come from the tensors' shapes. Loaded once per (file, modification time) and shared.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import RealisIDInputError
from ..branches.identity_attention import describe_layers
from ..cache import SharedModels
from .files import check_file, is_safetensors, read_safetensors, read_torch_pickle
from .resampler import Resampler, resampler_from_state_dict

log = logging.getLogger("RealisID")
INPUT = "adapter_name"
GET_IT = "download ip-adapter.bin from huggingface.co/InstantX/InstantID into models/instantid"
IP_KEY = re.compile(r"^(\d+)\.(to_k_ip|to_v_ip)\.weight$")


class InstantIDAdapter(nn.Module):
    """resampler: embedding → tokens; to_k / to_v: per cross-attention layer (diffusers order),
    Linear(context width → layer width, no bias)."""

    def __init__(self, resampler: Resampler, widths: list[int], context: int):
        super().__init__()
        self.resampler = resampler
        self.to_k = nn.ModuleList(nn.Linear(context, w, bias=False) for w in widths)
        self.to_v = nn.ModuleList(nn.Linear(context, w, bias=False) for w in widths)

    @property
    def layer_widths(self) -> list[int]:
        return [m.out_features for m in self.to_k]

    @property
    def context_width(self) -> int:
        return self.to_k[0].in_features

    def keys_values(self, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, (to_k_ip(tokens), to_v_ip(tokens)) for tokens [M, K, context]: [M, K, width] each."""
        tokens = tokens.to(self.to_k[0].weight)
        with torch.no_grad():
            return [(k(tokens), v(tokens)) for k, v in zip(self.to_k, self.to_v)]

    def describe(self) -> str:
        return describe_layers(self.layer_widths)


@dataclass(frozen=True)
class AdapterFile:
    image_proj: dict
    ip_adapter: dict


CODE_FIX = f"use InstantID's original ip-adapter.bin or its .safetensors form ({GET_IT})"


def read_adapter_file(path: str, node: str) -> AdapterFile:
    """The two state dicts of an InstantID adapter file (.bin pickle read with weights_only, or .safetensors)."""
    try:
        if is_safetensors(path):
            data = read_safetensors(path, INPUT, GET_IT, node)
        else:
            data = read_torch_pickle(path, INPUT, GET_IT, node, code_fix=CODE_FIX)
    except RealisIDInputError as exc:
        raise exc.with_node(node) from None
    return split_adapter_state(data, os.path.basename(path), node)


def split_adapter_state(data, name: str, node: str) -> AdapterFile:
    """{"image_proj", "ip_adapter"} dicts from the nested or the prefix-flattened layout."""
    if isinstance(data, dict) and isinstance(data.get("image_proj"), dict) and isinstance(data.get("ip_adapter"), dict):
        for part in ("image_proj", "ip_adapter"):
            for key, value in data[part].items():
                if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                    raise RealisIDInputError(node, INPUT, f"{name}: '{part}' entry '{str(key)[:80]}' is "
                                             f"{type(value).__name__ if not isinstance(value, torch.Tensor) else value.dtype}"
                                             ", not a tensor of weights", GET_IT)
        return AdapterFile(data["image_proj"], data["ip_adapter"])
    if isinstance(data, dict):
        parts = {"image_proj": {}, "ip_adapter": {}}
        for key, value in data.items():
            head, _, rest = str(key).partition(".")
            if head in parts and rest and isinstance(value, torch.Tensor) and value.is_floating_point():
                parts[head][rest] = value
        if parts["image_proj"] and parts["ip_adapter"]:
            return AdapterFile(parts["image_proj"], parts["ip_adapter"])
        found = ", ".join(sorted(map(str, data))[:5])
    else:
        found = type(data).__name__
    raise RealisIDInputError(node, INPUT, f"{name} is not an InstantID adapter: it has no 'image_proj' and "
                             f"'ip_adapter' weights (found {found})", GET_IT)


def adapter_from_file(parts: AdapterFile, name: str, node: str) -> InstantIDAdapter:
    resampler = resampler_from_state_dict(parts.image_proj, name, node, INPUT)
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in parts.ip_adapter.items():
        m = IP_KEY.match(str(key))
        if m is None:
            raise RealisIDInputError(node, INPUT, f"{name}: unexpected ip_adapter weight '{key}' (InstantID's are "
                                     "'{n}.to_k_ip.weight' and '{n}.to_v_ip.weight')", GET_IT)
        layers.setdefault(int(m.group(1)), {})[m.group(2)] = value
    order = sorted(layers)
    broken = [n for n in order if set(layers[n]) != {"to_k_ip", "to_v_ip"}
              or layers[n]["to_k_ip"].ndim != 2 or layers[n]["to_k_ip"].shape != layers[n]["to_v_ip"].shape]
    if not order or broken:
        raise RealisIDInputError(node, INPUT, f"{name}: the ip_adapter weights are incomplete or inconsistent "
                                 f"(layer {broken[0] if broken else '—'})", GET_IT)
    contexts = {layers[n]["to_k_ip"].shape[1] for n in order}
    if contexts != {resampler.width}:
        raise RealisIDInputError(node, INPUT, f"{name}: the ip_adapter layers take {sorted(contexts)}-wide tokens "
                                 f"but its Resampler makes {resampler.width}-wide ones", GET_IT)
    adapter = InstantIDAdapter(resampler, [layers[n]["to_k_ip"].shape[0] for n in order], resampler.width)
    for i, n in enumerate(order):
        adapter.to_k[i].weight.data.copy_(layers[n]["to_k_ip"].float())
        adapter.to_v[i].weight.data.copy_(layers[n]["to_v_ip"].float())
    return adapter.eval().requires_grad_(False)


_adapters = SharedModels()


def load_adapter(path: str, node: str = "RealisID Load InstantID Adapter") -> InstantIDAdapter:
    """The adapter in `path`, loaded once per (file, modification time) on the CPU in float32."""
    check_file(path, INPUT, GET_IT, node)
    key = (os.path.realpath(path), os.path.getmtime(path))
    name = os.path.basename(path)

    def load():
        adapter = adapter_from_file(read_adapter_file(path, node), name, node)
        log.info("RealisID: loaded InstantID adapter %s: Resampler %d → %d tokens × %d, %s", name,
                 adapter.resampler.embedding_width, adapter.resampler.tokens, adapter.resampler.width,
                 adapter.describe())
        return adapter
    return _adapters.get(key, load, f"InstantID adapter {name}")
