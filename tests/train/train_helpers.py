"""Tiny diffusers base models (real classes, random weights) saved as diffusers folders, and test photos.

The trainer loads these folders with the same `from_pretrained` calls it uses for real SD1.5/SDXL
models, so its code path is the real one; only the sizes are tiny.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16
# the test photos (make_photos) and what preparation does with them
KEPT = ("astronaut.png", "astronaut_left.png", "tom.png", "people/chelsea.jpg")
DROPPED = {"group.jpg": "several faces", "no_face.jpg": "no face", "corrupt.jpg": "unreadable",
           "small_face.png": "face too small"}


def tiny_tokenizer():
    """A real CLIP tokenizer over a character vocabulary (every byte, with and without the word end)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in sorted(ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = MAX_TOKENS
    return tok


def _text_encoder(cls, vocab: int, hidden: int, seed: int, projection: int | None = None):
    from transformers import CLIPTextConfig
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=MAX_TOKENS,
                            projection_dim=projection or hidden, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return cls(config)


def _vae(seed: int):
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                         latent_channels=4, norm_num_groups=4, sample_size=64)


def _scheduler():
    from diffusers import DDPMScheduler
    # SD's schedule, which ComfyUI's SD1.5/SDXL model sampling also uses
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                         prediction_type="epsilon")


def save_tiny_sd15(folder: Path, seed: int = 0) -> Path:
    """A tiny SD1.5-layout pipeline folder: U-Net (2 levels, 32 channels, context 32), VAE, CLIP, tokenizer."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 32), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    parts = {"unet": unet, "vae": _vae(seed + 1), "scheduler": _scheduler(), "tokenizer": tok,
             "text_encoder": _text_encoder(CLIPTextModel, len(tok), 32, seed + 2)}
    for name, part in parts.items():
        part.save_pretrained(str(folder / name))
    return folder


def save_tiny_sdxl(folder: Path, seed: int = 0) -> Path:
    """A tiny SDXL-layout pipeline folder: text-time U-Net (context 32+32), two CLIPs, VAE."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 32), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
                                attention_head_dim=4, norm_num_groups=8, use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=32 + 6 * 8)
    parts = {"unet": unet, "vae": _vae(seed + 1), "scheduler": _scheduler(), "tokenizer": tok, "tokenizer_2": tok,
             "text_encoder": _text_encoder(CLIPTextModel, len(tok), 32, seed + 2),
             "text_encoder_2": _text_encoder(CLIPTextModelWithProjection, len(tok), 32, seed + 3)}
    for name, part in parts.items():
        part.save_pretrained(str(folder / name))
    return folder


def sd15_shaped_unet(seed: int = 0):
    """A diffusers U-Net in the shapes ComfyUI detects as SD1.5 (context 768, 320 channels, 8 heads) — the
    diffusers twin of tests/fixtures/tiny_models.py SD15_UNET (2 levels, 1 block each)."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=32, block_out_channels=(320, 320), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=768, attention_head_dim=8)


def sdxl_shaped_unet(seed: int = 0):
    """The diffusers twin of tests/fixtures/tiny_models.py SDXL_UNET (Segmind-Vega-like: 3 levels of 320
    channels, 2 blocks each, transformer depths 0/1/2, context 2048, 64-channel heads, text-time embedding)."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=32, block_out_channels=(320, 320, 320), layers_per_block=2,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                transformer_layers_per_block=(1, 1, 2), cross_attention_dim=2048,
                                attention_head_dim=5, use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)


def randomize_zero_layers(controlnet, seed: int = 0, scale: float = 0.05) -> None:
    """Give a fresh ControlNet's zero-initialised outputs random weights, as training would, so residuals are not 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
                p.copy_(torch.randn(p.shape, generator=g) * scale)


# -- photos ------------------------------------------------------------------------------------------------
def insightface_image(name: str) -> np.ndarray:
    """A photo shipped in the insightface wheel (data/images), BGR."""
    import cv2
    import insightface
    path = os.path.join(os.path.dirname(insightface.__file__), "data", "images", name)
    image = cv2.imread(path)
    assert image is not None, path
    return image


def astronaut_bgr() -> np.ndarray:
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[..., ::-1])


def write_photo(path: Path, bgr: np.ndarray) -> Path:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgr)
    return path


def make_photos(folder: Path) -> Path:
    """Real photos from insightface's and scikit-image's packages, with the test packs' "faces" painted in:
    four with one face (one captioned), a group photo, a photo without a face, a tiny face, a corrupt file."""
    import cv2
    from skimage import data

    from fixtures.fake_insightface import paint_face
    astronaut = astronaut_bgr()
    write_photo(folder / "astronaut.png", paint_face(astronaut, 384, 128, 60))
    (folder / "astronaut.txt").write_text("an astronaut in a white suit\n", encoding="utf-8")
    write_photo(folder / "astronaut_left.png", paint_face(astronaut, 128, 256, 56))
    tom = cv2.resize(insightface_image("Tom_Hanks_54745.png"), (448, 448), interpolation=cv2.INTER_CUBIC)
    write_photo(folder / "tom.png", paint_face(tom, 224, 224, 50))
    chelsea = np.ascontiguousarray(data.chelsea()[..., ::-1])  # 451×300: detector scale 640/451
    write_photo(folder / "people" / "chelsea.jpg", paint_face(chelsea, 225.5, 135.3, 48))
    group = insightface_image("t1.jpg")  # 1280×886, several people: detector scale 0.5
    for cx, cy in ((320, 448), (640, 448), (960, 320)):
        group = paint_face(group, cx, cy, 128)
    write_photo(folder / "group.jpg", group)
    write_photo(folder / "no_face.jpg", np.ascontiguousarray(data.coffee()[..., ::-1]))
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)  # detector scale 2.5: a 26 px face
    write_photo(folder / "small_face.png", paint_face(small, 128, 128, 26))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 truncated here")
    return folder


def tiny_config(base: Path, data: Path, output: Path, family: str = "SD1.5", **train):
    """A configuration that trains the tiny models on 64-pixel pictures (8×8 latents, 8-cell crops) on the CPU."""
    from realisid_train.config import Config
    c = Config()
    return replace(
        c,
        base=replace(c.base, model=str(base), family=family),
        data=replace(c.data, manifest=str(data / "manifest.jsonl"), resolution=64, num_workers=0),
        local=replace(c.local, working_size=8),
        identity=replace(c.identity, tokens=2),
        train=replace(c.train, **{**dict(output_dir=str(output), max_steps=4, batch_size=2, learning_rate=1e-3,
                                         projector_learning_rate=1e-3, lr_warmup_steps=0, mixed_precision="no",
                                         gradient_checkpointing=False, checkpoint_every=2, cpu=True,
                                         adam_weight_decay=0.0), **train}))
