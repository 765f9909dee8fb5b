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

import os
from dataclasses import dataclass

import comfy.ldm.modules.attention as comfy_attention
import folder_paths

from ..realisid_core.branches.cfg import uncond_rows
from ..realisid_core.branches.identity_attention import (IdentityAttention, add_identity_attention, check_masks,
                                                         token_grid)
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models.instantid import (CUBIQ_UNCOND_NOISE, GET_IT, InstantIDAdapter, check_identitynet,
                                              check_layers, check_sdxl, load_adapter, people_identity,
                                              uncond_noise_embedding)
from ..realisid_core.people.identity import Identity, IdentityTokens
from .conditioning import local_branch_conditioning
from .controls import CONTROL_NET_INPUT, controlnet_layout, model_layout
from .inputs import FEATHER, PERCENT, WORKING_SIZE, check_window
from .models import DESCRIPTION_ATTRIBUTE, shared_patcher, tokens_of
from .paths import INSTANTID_FOLDER

LOADER = "RealisID Load InstantID Adapter"
NODE = "RealisID Apply InstantID"
ADAPTER_TYPE = "REALISID_INSTANTID"

# The key ComfyUI's UNetModel gives its middle block: openaimodel.py (ComfyUI 0.3.64) sets
# transformer_options["block"] = ("middle", 0) before the middle block (not ("middle", 1)).
MIDDLE_BLOCK = ("middle", 0)


@dataclass(frozen=True)
class CrossAttentionLayer:
    """One cross-attention (attn2) of ComfyUI's U-Net: its patch key block + transformer index,
    its width (the query/key width) and the context width its to_k takes."""

    block: tuple[str, int]
    index: int
    width: int
    context: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (*self.block, self.index)


def cross_attention_layers(unet) -> list[CrossAttentionLayer]:
    """The cross-attention layers of an SD-style UNetModel (ComfyUI's openaimodel) in diffusers'
    attention-processor order: down blocks (ComfyUI's input blocks), up blocks (output blocks),
    then the middle block — the order InstantID's ip_adapter weights are numbered in."""
    blocks = [("input", i, b) for i, b in enumerate(unet.input_blocks)]
    blocks += [("output", i, b) for i, b in enumerate(unet.output_blocks)]
    if getattr(unet, "middle_block", None) is not None:
        blocks.append((*MIDDLE_BLOCK, unet.middle_block))
    layers = []
    for name, number, block in blocks:
        for module in block.modules():
            for index, transformer in enumerate(getattr(module, "transformer_blocks", None) or ()):
                attn2 = getattr(transformer, "attn2", None)
                if attn2 is not None:
                    layers.append(CrossAttentionLayer((name, number), index, attn2.to_q.out_features,
                                                      attn2.to_k.in_features))
    return layers


def adapter_path(adapter_name) -> str:
    """The adapter file's full path, or an error naming the folders searched and what belongs there."""
    path = folder_paths.get_full_path(INSTANTID_FOLDER, adapter_name) if isinstance(adapter_name, str) else None
    if path is not None and os.path.isfile(path):
        return path
    folders = folder_paths.get_folder_paths(INSTANTID_FOLDER)
    present = folder_paths.get_filename_list(INSTANTID_FOLDER)
    holds = f"they hold {', '.join(present[:8])}" if present else "they hold no model file"
    raise RealisIDInputError(input_name="adapter_name", problem=f"'{adapter_name}' was not found in the InstantID "
                             f"folder(s) {', '.join(folders)} ({holds})",
                             fix=f"{GET_IT} (the file is ip-adapter.bin; InstantID's IdentityNet, "
                             "ControlNetModel/diffusion_pytorch_model.safetensors, goes to models/controlnet)")


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
            return str(exc.with_node(LOADER))
        return True

    RETURN_TYPES = (ADAPTER_TYPE,)
    RETURN_NAMES = ("instantid",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads InstantID's adapter (ip-adapter.bin): its Resampler (face embedding → 16 identity tokens) "
                   "and its identity attention for the SDXL U-Net. Read safely: a file holding code is refused.")

    def load(self, adapter_name):
        return (shared_patcher(adapter_path(adapter_name), load_adapter, "InstantID adapter"),)


def identitynet_description(control_net):
    """What the ControlNet was trained on (InstantID's IdentityNet unless its description says otherwise),
    checked to be InstantID's keypoint format on an SDXL-wide ControlNet."""
    described = check_identitynet(getattr(control_net, DESCRIPTION_ATTRIBUTE, None), CONTROL_NET_INPUT)
    layout = controlnet_layout(control_net)
    check_sdxl(layout.context_dim, layout.family, "this ControlNet is built for", CONTROL_NET_INPUT,
               "load InstantID's IdentityNet (ControlNetModel/diffusion_pytorch_model.safetensors)")
    return described


def check_sdxl_model(model) -> None:
    layout = model_layout(model.model)
    check_sdxl(layout.context_dim, layout.family, "the model being sampled is", "model", "sample with an SDXL checkpoint")


def matching_layers(adapter: InstantIDAdapter, model) -> list[CrossAttentionLayer]:
    """The U-Net's cross-attention layers, checked one for one against the adapter's."""
    layers = cross_attention_layers(model.model.diffusion_model)
    check_layers(adapter, [layer.width for layer in layers], [layer.context for layer in layers])
    return layers


def identity_tokens(instantid, identity: Identity, uncond_noise: float) -> IdentityTokens:
    """Every person's Resampler tokens, with CFG's unconditional tokens: the Resampler of a zero embedding
    (InstantID's), or of cubiq's noise vector when `uncond_noise` > 0."""
    resampler = instantid.model.resampler
    tokens = tokens_of(instantid, identity, projector=resampler, raw=True)
    if uncond_noise > 0:
        noisy = tokens_of(instantid, Identity(uncond_noise_embedding(identity, uncond_noise)), projector=resampler,
                          raw=True)
        tokens = IdentityTokens(tokens.tokens, noisy.tokens)
    return tokens


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
        sigmas = extra_options.get("sigmas")
        if not shared.active(None if sigmas is None else float(sigmas.reshape(-1)[0])):
            return out
        original_shape = extra_options.get("original_shape")
        if original_shape is not None:
            shared.check_shape(*tuple(original_shape[-2:]))
        height, width = token_grid(q.shape[1], extra_options.get("activations_shape"),
                                   extra_options.get("original_shape"))
        keys, values, null_key, null_value = shared.layer(self.layer, q.device, q.dtype)
        regions = shared.regions(height, width, q.device, q.dtype)
        uncond = uncond_rows(extra_options.get("cond_or_uncond"), q.shape[0])
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
            "uncond_noise": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "What CFG's negative side gets as identity: 0 = the Resampler's "
                                                  "tokens of a zero embedding (InstantID's own pipeline); above 0 = "
                                                  "of this much seeded noise instead, as cubiq's ComfyUI_InstantID "
                                                  f"does ({CUBIQ_UNCOND_NOISE} there reproduces its default)."}),
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
              mask=None, uncond_noise=0.0):
        check_window(cn_start_percent, cn_end_percent, "cn_start_percent", "cn_end_percent")
        check_window(ip_start_percent, ip_end_percent, "ip_start_percent", "ip_end_percent")
        check_sdxl_model(model)
        described = identitynet_description(control_net)
        identity = people_identity(people)
        masks = check_masks(mask, people.count)
        adapter: InstantIDAdapter = instantid.model
        layers = matching_layers(adapter, model)
        if cn_strength == 0 and ip_weight == 0:
            return model, positive, negative
        tokens = identity_tokens(instantid, identity, uncond_noise)
        if cn_strength > 0:
            positive, negative = local_branch_conditioning(positive, negative, control_net, described, people, tokens,
                                                           cn_strength, cn_start_percent, cn_end_percent, working_size,
                                                           feather, NODE, ("cn_start_percent", "cn_end_percent"))
        if ip_weight > 0:
            model = patch_identity_attention(model, layers, identity_keys_values(instantid, tokens),
                                             people.locations(), people.strengths(), region_margin, masks,
                                             ip_weight, ip_start_percent, ip_end_percent)
        return model, positive, negative


def identity_keys_values(instantid, tokens: IdentityTokens):
    """The adapter's keys and values of every person's tokens and the null tokens, computed where ComfyUI loaded
    the adapter (it is loaded by tokens_of just before)."""
    return instantid.model.identity_keys_values(tokens, instantid.load_device)


NODE_CLASS_MAPPINGS = {
    "RealisID_InstantIDLoader": RealisIDInstantIDLoader,
    "RealisID_ApplyInstantID": RealisIDApplyInstantID,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_InstantIDLoader": LOADER,
    "RealisID_ApplyInstantID": NODE,
}
