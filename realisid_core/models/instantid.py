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
from ..families import FAMILIES
from ..people.identity import Identity, join_identities
from ..people.people import People
from ..signals.hints import hint_format
from .description import INSTANTID_IDENTITYNET, BranchDescription
from .resampler import Resampler, resampler_from_state_dict

log = logging.getLogger("RealisID")
INPUT = "adapter_name"
GET_IT = "download ip-adapter.bin from huggingface.co/InstantX/InstantID into models/instantid"
IP_KEY = re.compile(r"^(\d+)\.(to_k_ip|to_v_ip)\.weight$")
RECOGNISER_PACK = "antelopev2"  # InstantID's Resampler was trained on this pack's (glintr100) raw embeddings
SDXL = FAMILIES["SDXL"]
CUBIQ_UNCOND_NOISE = 0.35  # cubiq's ComfyUI_InstantID ApplyInstantID's hidden default for `noise`


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

    def identity_keys_values(self, tokens, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, to_k_ip / to_v_ip of every person's tokens and the null tokens (last): [P+1, K, C], CPU
        float32, computed on `device`. Computed once, so the large projections never need to sit beside the
        U-Net while sampling."""
        both = torch.cat([tokens.tokens, tokens.null]).to(device)
        return [(k.to("cpu", torch.float32), v.to("cpu", torch.float32)) for k, v in self.keys_values(both)]

    def describe(self) -> str:
        return describe_layers(self.layer_widths)


@dataclass(frozen=True)
class AdapterFile:
    image_proj: dict
    ip_adapter: dict


CODE_FIX = f"use InstantID's original ip-adapter.bin or its .safetensors form ({GET_IT})"


def read_adapter_file(path: str) -> AdapterFile:
    """The two state dicts of an InstantID adapter file (.bin pickle read with weights_only, or .safetensors)."""
    if is_safetensors(path):
        data = read_safetensors(path, INPUT, GET_IT)
    else:
        data = read_torch_pickle(path, INPUT, GET_IT, code_fix=CODE_FIX)
    return split_adapter_state(data, os.path.basename(path))


def split_adapter_state(data, name: str) -> AdapterFile:
    """{"image_proj", "ip_adapter"} dicts from the nested or the prefix-flattened layout."""
    if isinstance(data, dict) and isinstance(data.get("image_proj"), dict) and isinstance(data.get("ip_adapter"), dict):
        for part in ("image_proj", "ip_adapter"):
            for key, value in data[part].items():
                if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                    raise RealisIDInputError(INPUT, f"{name}: '{part}' entry '{str(key)[:80]}' is "
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
    raise RealisIDInputError(input_name=INPUT,
                             problem=f"{name} is not an InstantID adapter: it has no 'image_proj' and "
                             f"'ip_adapter' weights (found {found})", fix=GET_IT)


def adapter_from_file(parts: AdapterFile, name: str) -> InstantIDAdapter:
    resampler = resampler_from_state_dict(parts.image_proj, name, INPUT)
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in parts.ip_adapter.items():
        m = IP_KEY.match(str(key))
        if m is None:
            raise RealisIDInputError(input_name=INPUT,
                                     problem=f"{name}: unexpected ip_adapter weight '{key}' (InstantID's are "
                                     "'{n}.to_k_ip.weight' and '{n}.to_v_ip.weight')", fix=GET_IT)
        layers.setdefault(int(m.group(1)), {})[m.group(2)] = value
    order = sorted(layers)
    broken = [n for n in order if set(layers[n]) != {"to_k_ip", "to_v_ip"}
              or layers[n]["to_k_ip"].ndim != 2 or layers[n]["to_k_ip"].shape != layers[n]["to_v_ip"].shape]
    if not order or broken:
        raise RealisIDInputError(input_name=INPUT,
                                 problem=f"{name}: the ip_adapter weights are incomplete or inconsistent "
                                 f"(layer {broken[0] if broken else '—'})", fix=GET_IT)
    contexts = {layers[n]["to_k_ip"].shape[1] for n in order}
    if contexts != {resampler.width}:
        raise RealisIDInputError(input_name=INPUT,
                                 problem=f"{name}: the ip_adapter layers take {sorted(contexts)}-wide tokens "
                                 f"but its Resampler makes {resampler.width}-wide ones", fix=GET_IT)
    adapter = InstantIDAdapter(resampler, [layers[n]["to_k_ip"].shape[0] for n in order], resampler.width)
    for i, n in enumerate(order):
        adapter.to_k[i].weight.data.copy_(layers[n]["to_k_ip"].float())
        adapter.to_v[i].weight.data.copy_(layers[n]["to_v_ip"].float())
    return adapter.eval().requires_grad_(False)


_adapters = SharedModels()


def load_adapter(path: str) -> InstantIDAdapter:
    """The adapter in `path`, loaded once per (file, modification time) on the CPU in float32."""
    check_file(path, INPUT, GET_IT)
    key = (os.path.realpath(path), os.path.getmtime(path))
    name = os.path.basename(path)

    def load():
        adapter = adapter_from_file(read_adapter_file(path), name)
        log.info("RealisID: loaded InstantID adapter %s: Resampler %d → %d tokens × %d, %s", name,
                 adapter.resampler.embedding_width, adapter.resampler.tokens, adapter.resampler.width,
                 adapter.describe())
        return adapter
    return _adapters.get(key, load, f"InstantID adapter {name}")


# ---- InstantID's rules ----------------------------------------------------------------------------

def check_identitynet(described: BranchDescription | None, input_name: str = "control_net") -> BranchDescription:
    """What the ControlNet was trained on: its RealisID description, which must be InstantID's keypoint format,
    or (None: loaded without one) InstantID's IdentityNet."""
    if described is None:
        return INSTANTID_IDENTITYNET
    if described.role != "local" or described.hint_format != INSTANTID_IDENTITYNET.hint_format:
        trained = (hint_format(described.hint_format).description if described.role == "local"
                   else "location guidance (a global branch)")
        raise RealisIDInputError(input_name=input_name, problem=f"this ControlNet ({described.name}) was trained on "
                                 f"{trained}, so InstantID's keypoint drawing would be a hint it never saw",
                                 fix="connect InstantID's IdentityNet here; RealisID's own branches go to RealisID "
                                 "Apply Local Branch / Apply Global Branch")
    return described


def check_sdxl(context_width: int | None, family: str, what: str, input_name: str, fix: str) -> None:
    """Refuse a ControlNet or model that is not SDXL-wide (`what`: "this ControlNet is built for", say): InstantID's
    weights are SDXL's."""
    if context_width != SDXL.context_width:
        raise RealisIDInputError(input_name=input_name, problem=f"{what} {family} (cross-attention width "
                                 f"{context_width}), but InstantID's IdentityNet and adapter are made for SDXL (width "
                                 f"{SDXL.context_width})", fix=fix)


def check_layers(adapter: InstantIDAdapter, widths: list[int], contexts: list[int],
                 input_name: str = "instantid") -> None:
    """The U-Net's cross-attention layers (query widths and context widths, diffusers' order), checked one for
    one against the adapter's."""
    if widths != adapter.layer_widths or any(c != adapter.context_width for c in contexts):
        raise RealisIDInputError(input_name=input_name, problem=f"the adapter is made for a U-Net with "
                                 f"{adapter.describe()}, but this model has {describe_layers(widths)}",
                                 fix="use the adapter made for this model (InstantID's ip-adapter.bin is for SDXL "
                                 "base and its fine-tunes)")


def people_identity(people: People, input_name: str = "people") -> Identity:
    """Everyone's identity [P, 512] (person order), from photos analysed with antelopev2."""
    people.locations(input_name)  # count and places checked first: errors name what is wrong with the people
    for k, person in enumerate(people.persons, 1):
        if person.tokens is not None:
            raise RealisIDInputError(input_name=input_name, problem=f"person {k} was given ready identity tokens, but "
                                     "InstantID makes its own tokens with its Resampler from a face embedding",
                                     fix="connect RealisID Identity (photos of the person) to the person's 'identity'")
        if person.identity is None:
            raise RealisIDInputError(input_name=input_name, problem=f"person {k} has no identity, and InstantID has "
                                     "nothing to do without one",
                                     fix="connect RealisID Identity (photos of the person) to each person")
        pack = person.identity.pack
        if pack is None:
            log.warning("RealisID: InstantID: person %d's identity does not say which face-analysis pack made it; "
                        "InstantID expects %s embeddings", k, RECOGNISER_PACK)
        elif pack != RECOGNISER_PACK:
            raise RealisIDInputError(input_name=input_name, problem=f"person {k}'s identity was made with the {pack} "
                                     f"pack, but InstantID's Resampler was trained on {RECOGNISER_PACK} embeddings "
                                     "(another recogniser: its vectors would mean nothing to it)",
                                     fix=f"choose '{RECOGNISER_PACK}' in RealisID Face Analysis Loader for the "
                                     "identities")
        if person.identity.norms is None:
            log.warning("RealisID: InstantID: person %d's identity lacks the recogniser's raw length; InstantID's "
                        "Resampler expects raw embeddings and gets unit vectors", k)
    return join_identities([p.identity for p in people.persons], input_name)


def uncond_noise_embedding(identity: Identity, noise: float) -> torch.Tensor:
    """The embedding [1, E] whose Resampler tokens CFG's unconditional side gets instead of a zero embedding's
    (cubiq's ComfyUI_InstantID `noise`): `noise` × uniform noise, seeded by the sum of the raw embeddings (one
    person: exactly cubiq's vector, drawn with torch's CPU generator as cubiq draws it)."""
    raw = identity.raw().to("cpu", torch.float32)
    generator = torch.Generator().manual_seed(int(torch.sum(raw).item()) % 1000000007)
    return noise * torch.rand((1, raw.shape[-1]), generator=generator, dtype=raw.dtype)
