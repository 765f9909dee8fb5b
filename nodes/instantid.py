"""InstantID's published weights through RealisID: IdentityNet on every face's crop (the local
branch) and the adapter's identity attention in the U-Net, per person and per region.

- RealisID Load InstantID Adapter: `ip-adapter.bin` (or its .safetensors form) from models/instantid.
- RealisID Apply InstantID: people (identities from photos, places, poses) → the Resampler's
  identity tokens per person → IdentityNet on each face's crop with those tokens as its only
  context and InstantID's keypoint hint drawn in the crop; the adapter's attention added to the
  U-Net's cross-attention inside each person's region. CFG's unconditional side gets the tokens
  of a zero embedding, as InstantID's pipeline does.
"""
from __future__ import annotations

import logging
import os

import torch

import comfy.ldm.modules.attention as comfy_attention
import comfy.model_management
import comfy.model_patcher
import folder_paths

from ..realisid_core.models.description import INSTANTID_IDENTITYNET, BranchDescription
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.signals.hints import hint_format
from ..realisid_core.people.identity import Identity, join_identities
from ..realisid_core.branches.identity_attention import (TokenRegions, add_identity_attention, cross_attention_layers,
                                                describe_layers, region_weights, token_grid)
from ..realisid_core.people.identity import IdentityTokens
from ..realisid_core.models.instantid import GET_IT, InstantIDAdapter, load_adapter
from ..realisid_core.cache import SharedModels
from ..realisid_core.people.people import People
from .apply_local_branch import FEATHER, WORKING_SIZE, local_branch_conditioning
from .controlnet_loader import DESCRIPTION_ATTRIBUTE
from .controls import CONTROL_NET_INPUT, RealisIDControl, controlnet_layout, model_layout, uncond_rows
from .id_projector import tokens_of
from .paths import INSTANTID_FOLDER

LOADER = "RealisID Load InstantID Adapter"
NODE = "RealisID Apply InstantID"
ADAPTER_TYPE = "REALISID_INSTANTID"
RECOGNISER_PACK = "antelopev2"  # InstantID's Resampler was trained on this pack's (glintr100) raw embeddings
SDXL_CONTEXT = 2048
log = logging.getLogger("RealisID")

_patchers = SharedModels()  # (file, mtime, load device) → ModelPatcher: one copy per model per device


def adapter_path(adapter_name, node: str = LOADER) -> str:
    """The adapter file's full path, or an error naming the folders searched and what belongs there."""
    path = folder_paths.get_full_path(INSTANTID_FOLDER, adapter_name) if isinstance(adapter_name, str) else None
    if path is not None and os.path.isfile(path):
        return path
    folders = folder_paths.get_folder_paths(INSTANTID_FOLDER)
    present = folder_paths.get_filename_list(INSTANTID_FOLDER)
    holds = f"they hold {', '.join(present[:8])}" if present else "they hold no model file"
    raise RealisIDInputError(node, "adapter_name", f"'{adapter_name}' was not found in the InstantID folder(s) "
                             f"{', '.join(folders)} ({holds})",
                             f"{GET_IT} (the file is ip-adapter.bin; InstantID's IdentityNet, "
                             "ControlNetModel/diffusion_pytorch_model.safetensors, goes to models/controlnet)")


def _patcher_for(path: str):
    load_device = comfy.model_management.get_torch_device()
    key = (os.path.realpath(path), os.path.getmtime(path), str(load_device))
    return _patchers.get(key, lambda: comfy.model_patcher.ModelPatcher(
        load_adapter(path, LOADER), load_device=load_device, offload_device=comfy.model_management.unet_offload_device()),
        f"the model patcher of InstantID adapter {os.path.basename(path)} ({load_device})")


class RealisIDInstantIDLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"adapter_name": (folder_paths.get_filename_list(INSTANTID_FOLDER), {
            "tooltip": "InstantID's ip-adapter.bin (or its .safetensors form) in models/instantid: the Resampler "
                       "that turns a face embedding into identity tokens, and the U-Net's identity attention."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, adapter_name):
        # replaces ComfyUI's list check for this input: the same check, with a message saying where to put the file
        try:
            adapter_path(adapter_name)
        except RealisIDInputError as exc:
            return str(exc)
        return True

    RETURN_TYPES = (ADAPTER_TYPE,)
    RETURN_NAMES = ("instantid",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads InstantID's adapter (ip-adapter.bin): its Resampler (face embedding → 16 identity tokens) "
                   "and its identity attention for the SDXL U-Net. Read safely: a file holding code is refused.")

    def load(self, adapter_name):
        return (_patcher_for(adapter_path(adapter_name)),)


def identitynet_description(control_net, node: str = NODE) -> BranchDescription:
    """What the ControlNet was trained on: its RealisID description (which must be InstantID's
    keypoint format), or — loaded by ComfyUI's own loader — InstantID's IdentityNet."""
    described = getattr(control_net, DESCRIPTION_ATTRIBUTE, None)
    if described is None:
        described = INSTANTID_IDENTITYNET
    elif described.role != "local" or described.hint_format != INSTANTID_IDENTITYNET.hint_format:
        trained = (hint_format(described.hint_format).description if described.role == "local"
                   else "location guidance (a global branch)")
        raise RealisIDInputError(node, CONTROL_NET_INPUT, f"this ControlNet ({described.name}) was trained on {trained}, "
                                 "so InstantID's keypoint drawing would be a hint it never saw",
                                 "connect InstantID's IdentityNet here; RealisID's own branches go to RealisID Apply "
                                 "Local Branch / Apply Global Branch")
    layout = controlnet_layout(control_net, node)
    if layout.context_dim != SDXL_CONTEXT:
        raise RealisIDInputError(node, CONTROL_NET_INPUT, f"this ControlNet is built for {layout.family} (cross-attention "
                                 f"width {layout.context_dim}), but InstantID's IdentityNet is an SDXL ControlNet "
                                 f"(width {SDXL_CONTEXT})", "load InstantID's IdentityNet "
                                 "(ControlNetModel/diffusion_pytorch_model.safetensors)")
    return described


def check_sdxl_model(model, node: str = NODE) -> None:
    layout = model_layout(model.model, node)
    if layout.context_dim != SDXL_CONTEXT:
        raise RealisIDInputError(node, "model", f"the model being sampled is {layout.family} (cross-attention width "
                                 f"{layout.context_dim}), but InstantID's IdentityNet and adapter are made for SDXL "
                                 f"(width {SDXL_CONTEXT})", "sample with an SDXL checkpoint")


def people_identity(people: People, node: str = NODE) -> Identity:
    """Everyone's identity [P, 512] (person order), from photos analysed with antelopev2."""
    people.locations(node)  # count and places checked first: errors name what is wrong with the people
    for k, person in enumerate(people.persons, 1):
        if person.tokens is not None:
            raise RealisIDInputError(node, "people", f"person {k} was given ready identity tokens, but InstantID makes "
                                     "its own tokens with its Resampler from a face embedding",
                                     "connect RealisID Identity (photos of the person) to the person's 'identity'")
        if person.identity is None:
            raise RealisIDInputError(node, "people", f"person {k} has no identity, and InstantID has nothing to do "
                                     "without one", "connect RealisID Identity (photos of the person) to each person")
        pack = person.identity.pack
        if pack is None:
            log.warning("RealisID: %s: person %d's identity does not say which face-analysis pack made it; InstantID "
                        "expects %s embeddings", node, k, RECOGNISER_PACK)
        elif pack != RECOGNISER_PACK:
            raise RealisIDInputError(node, "people", f"person {k}'s identity was made with the {pack} pack, but "
                                     f"InstantID's Resampler was trained on {RECOGNISER_PACK} embeddings (another "
                                     f"recogniser: its vectors would mean nothing to it)",
                                     f"choose '{RECOGNISER_PACK}' in RealisID Face Analysis Loader for the identities")
        if person.identity.norms is None:
            log.warning("RealisID: %s: person %d's identity lacks the recogniser's raw length; InstantID's Resampler "
                        "expects raw embeddings and gets unit vectors", node, k)
    return join_identities([p.identity for p in people.persons], node)


def matching_layers(adapter: InstantIDAdapter, model, node: str = NODE):
    """The U-Net's cross-attention layers, checked one for one against the adapter's."""
    layers = cross_attention_layers(model.model.diffusion_model)
    widths = [layer.width for layer in layers]
    if widths != adapter.layer_widths or any(layer.context != adapter.context_width for layer in layers):
        raise RealisIDInputError(node, "instantid", f"the adapter is made for a U-Net with {adapter.describe()}, "
                                 f"but this model has {describe_layers(widths)}",
                                 "use the adapter made for this model (InstantID's ip-adapter.bin is for SDXL "
                                 "base and its fine-tunes)")
    return layers


class IdentityAttention:
    """What every layer's patch shares: per-layer keys/values of each person's tokens and of the null
    tokens, the people's regions (token weights per grid size, computed once), weight and window.

    Shared, never copied: ComfyUI deep-copies model options on every model clone.
    """

    def __init__(self, keys_values, locations, strengths, margin, masks, weight, sigma_start, sigma_end):
        self.keys_values = keys_values  # per layer (keys [P+1, K, C], values [P+1, K, C]), the null last, CPU
        self.locations, self.strengths, self.margin, self.masks = locations, strengths, margin, masks
        self.weight, self.sigma_start, self.sigma_end = weight, sigma_start, sigma_end
        self._regions, self._layers, self._checked = {}, {}, set()

    def __deepcopy__(self, memo):
        return self

    def active(self, extra_options) -> bool:
        sigmas = extra_options.get("sigmas")
        if sigmas is None:
            return True
        sigma = float(sigmas.reshape(-1)[0])
        return self.sigma_end <= sigma <= self.sigma_start

    def regions(self, height, width, device, dtype) -> TokenRegions:
        key = (height, width, str(device), dtype)
        if key not in self._regions:
            weights = region_weights(self.locations.boxes, self.margin, height, width, self.masks)
            weights = weights * self.strengths[:, None]
            self._regions[key] = TokenRegions.from_weights(weights).to(device, dtype)
        return self._regions[key]

    def layer(self, i, device, dtype):
        key = (i, str(device), dtype)
        if key not in self._layers:
            keys, values = (t.to(device, dtype) for t in self.keys_values[i])
            self._layers[key] = (keys[:-1], values[:-1], keys[-1:], values[-1:])
        return self._layers[key]

    def check_shape(self, original_shape):
        """Places made for a picture of another shape than the latent are refused (as the local branch does)."""
        if original_shape is None or not self.locations.has_shape:
            return
        shape = tuple(original_shape[-2:])
        if shape in self._checked:
            return
        latent_h, latent_w = shape
        width, height = self.locations.width, self.locations.height
        if abs((width / height) / (latent_w / latent_h) - 1) > RealisIDControl.ASPECT_TOLERANCE:
            raise RealisIDInputError(NODE, "people", f"the faces' places come from {self.locations.source(0)}, made "
                                     f"for a {width}×{height} picture, but the latent being sampled is {latent_w}×"
                                     f"{latent_h} cells, another shape",
                                     "make the places for the picture you generate")
        self._checked.add(shape)


class IdentityAttentionPatch:
    """ComfyUI attn2 replacement for one cross-attention layer: the base attention (another pack's
    replacement for this layer when there is one, else ComfyUI's own), plus each person's identity
    attention inside their region."""

    def __init__(self, shared: IdentityAttention, layer: int, previous=None):
        self.shared, self.layer, self.previous = shared, layer, previous

    def __deepcopy__(self, memo):
        return self

    def __call__(self, q, k, v, extra_options):
        heads, precision = extra_options["n_heads"], extra_options.get("attn_precision")

        def attention(q_, k_, v_):
            return comfy_attention.optimized_attention(q_, k_, v_, heads, attn_precision=precision,
                                                       transformer_options=extra_options)
        out = self.previous(q, k, v, extra_options) if self.previous is not None else attention(q, k, v)
        shared = self.shared
        if not shared.active(extra_options):
            return out
        shared.check_shape(extra_options.get("original_shape"))
        height, width = token_grid(q.shape[1], extra_options.get("activations_shape"),
                                   extra_options.get("original_shape"))
        keys, values, null_key, null_value = shared.layer(self.layer, q.device, q.dtype)
        regions = shared.regions(height, width, q.device, q.dtype)
        uncond = uncond_rows(extra_options, q.shape[0])
        return add_identity_attention(out, q, keys, values, null_key, null_value, regions, uncond, shared.weight,
                                      attention)


def patch_identity_attention(model, layers, keys_values, locations, strengths, margin, masks, weight, start, end):
    """A clone of `model` with the identity attention on every cross-attention layer, chained after
    any attn2 replacement already there for that layer (by layer or by block)."""
    sampling = model.get_model_object("model_sampling")
    shared = IdentityAttention(keys_values, locations, strengths, margin, masks, float(weight),
                               sampling.percent_to_sigma(start), sampling.percent_to_sigma(end))
    patched = model.clone()
    existing = patched.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})
    for i, layer in enumerate(layers):
        previous = existing.get(layer.key, existing.get(layer.block))
        patched.set_model_attn2_replace(IdentityAttentionPatch(shared, i, previous), layer.block[0], layer.block[1],
                                        layer.index)
    return patched


def check_masks(mask, people: People, node: str = NODE):
    if mask is None:
        return None
    masks = mask.reshape(-1, *mask.shape[-2:]).float().cpu()
    if masks.shape[0] not in (1, people.count):
        raise RealisIDInputError(node, "mask", f"{masks.shape[0]} masks were given for {people.count} people",
                                 f"give one mask per person ({people.count}, in person order), or one mask that "
                                 "limits everybody's identity")
    return masks


PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}


class RealisIDApplyInstantID:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "An SDXL model: the adapter adds identity attention to its U-Net."}),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "InstantID's IdentityNet, loaded with Load ControlNet Model or "
                                                       "RealisID Load ControlNet."}),
            "instantid": (ADAPTER_TYPE, {"tooltip": "RealisID Load InstantID Adapter (ip-adapter.bin)."}),
            "people": ("REALISID_PEOPLE", {"tooltip": "Who goes where, looking how: each person's identity from their "
                                                      "photos (antelopev2), their face place and pose."}),
            "cn_strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 10.0, "step": 0.01,
                                      "tooltip": "IdentityNet's strength on every face's crop (InstantID's "
                                                 "controlnet_conditioning_scale); 0 switches it off."}),
            "cn_start_percent": ("FLOAT", {"default": 0.0, **PERCENT, "tooltip": "When IdentityNet starts steering."}),
            "cn_end_percent": ("FLOAT", {"default": 1.0, **PERCENT, "tooltip": "When IdentityNet stops steering."}),
            "ip_weight": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 3.0, "step": 0.01,
                                    "tooltip": "Weight of the adapter's identity attention in the U-Net (InstantID's "
                                               "ip_adapter_scale); 0 leaves the model untouched."}),
            "ip_start_percent": ("FLOAT", {"default": 0.0, **PERCENT,
                                           "tooltip": "When the identity attention starts."}),
            "ip_end_percent": ("FLOAT", {"default": 1.0, **PERCENT, "tooltip": "When the identity attention stops."}),
            "working_size": WORKING_SIZE,
            "feather": FEATHER,
            "region_margin": ("FLOAT", {"default": 1.5, "min": 1.0, "max": 4.0, "step": 0.05,
                                        "tooltip": "Each person's identity attention reaches their face box grown by "
                                                   "this factor (1.5 takes in hair and chin), and nowhere else."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Where identity may go, instead of the grown face boxes: one mask per person "
                                         "(person order), or one mask that limits everybody."}),
        }}

    RETURN_TYPES = ("MODEL", "CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("model", "positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = ("InstantID with its own published weights, per person: IdentityNet works on every face at full "
                   "detail (each face cropped and up-sampled, so small faces keep their identity), and each "
                   "person's identity enters the U-Net only inside their own region (so people do not blend).")

    def apply(self, model, positive, negative, control_net, instantid, people, cn_strength, cn_start_percent,
              cn_end_percent, ip_weight, ip_start_percent, ip_end_percent, working_size, feather, region_margin,
              mask=None):
        check_sdxl_model(model)
        described = identitynet_description(control_net)
        identity = people_identity(people)
        masks = check_masks(mask, people)
        adapter: InstantIDAdapter = instantid.model
        layers = matching_layers(adapter, model)
        if cn_strength == 0 and ip_weight == 0:
            return model, positive, negative
        tokens = tokens_of(instantid, identity, NODE, projector=adapter.resampler, raw=True)
        if cn_strength > 0:
            positive, negative = local_branch_conditioning(positive, negative, control_net, described, people, tokens,
                                                           cn_strength, cn_start_percent, cn_end_percent, working_size,
                                                           feather, node=NODE)
        if ip_weight > 0:
            model = patch_identity_attention(model, layers, identity_keys_values(instantid, tokens),
                                             people.locations(NODE), people.strengths(), region_margin, masks,
                                             ip_weight, ip_start_percent, ip_end_percent)
        return model, positive, negative


def identity_keys_values(instantid, tokens: IdentityTokens):
    """Per layer, to_k_ip / to_v_ip of every person's tokens and the null tokens (last): [P+1, K, C], CPU float32.
    Computed once here, so the large projections never need to sit beside the U-Net while sampling."""
    both = torch.cat([tokens.tokens, tokens.null]).to(instantid.load_device)
    return [(k.to("cpu", torch.float32), v.to("cpu", torch.float32)) for k, v in instantid.model.keys_values(both)]


NODE_CLASS_MAPPINGS = {
    "RealisID_InstantIDLoader": RealisIDInstantIDLoader,
    "RealisID_ApplyInstantID": RealisIDApplyInstantID,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_InstantIDLoader": LOADER,
    "RealisID_ApplyInstantID": NODE,
}
