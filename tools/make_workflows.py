"""Write the example workflows: UI format in workflows/, API-format twins in workflows/api/, thumbnails.

Run from the repository root with a ComfyUI checkout (COMFYUI_PATH, else ~/comfy/ComfyUI):
    python -m tools.make_workflows
Each graph is defined once here, laid out by hand in reading order (people → places and poses →
sampling), with groups, a note per group and titled nodes; both files come from the same
definition, with widget order read from the node classes, so the twins cannot drift apart.
ComfyUI lists workflows/*.json as the pack's templates: the file name is the template's
description (underscores read as spaces) and <name>.jpg its thumbnail.
"""
from __future__ import annotations

import json
from pathlib import Path

from tools.workflow_builder import Workflow

REPO = Path(__file__).resolve().parents[1]
NEGATIVE = "blurry, lowres, deformed face, extra fingers, watermark, text"
SD15 = {"name": "v1-5-pruned-emaonly-fp16.safetensors", "directory": "checkpoints",
        "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
               "v1-5-pruned-emaonly-fp16.safetensors"}
SDXL = {"name": "sd_xl_base_1.0.safetensors", "directory": "checkpoints",
        "url": "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"}
IDENTITYNET = {"name": "instantid_identitynet.safetensors", "directory": "controlnet",
               "url": "https://huggingface.co/InstantX/InstantID/resolve/main/ControlNetModel/"
                      "diffusion_pytorch_model.safetensors"}
INSTANTID_ADAPTER = {"name": "ip-adapter.bin", "directory": "instantid",
                     "url": "https://huggingface.co/InstantX/InstantID/resolve/main/ip-adapter.bin"}
GROUP_COLOURS = {"people": "#3f789e", "places and poses": "#8A8", "sampling": "#b58b2a"}
NOTES = {
    "people": "**People.** Load one or a few photos of each person into *person k photo*. The identity node's "
              "preview shows, in green, which face of each photo is used (the largest). Needs the antelopev2 "
              "face-analysis pack in `models/insightface/models/antelopev2`.",
    "places and poses": "**Places and poses.** Drag the numbered boxes on *faces* (box k is person k; the picture's "
                        "size comes from *picture size*). *pose photo* gives the pose and expression; *people* "
                        "previews everyone where they go.",
    "sampling": "**Sampling.** Write the *prompt*; the branch ControlNets and ID projector come from RealisID's "
                "trainer (`python -m realisid_train export`) into `models/controlnet` and `models/realisid`.",
}
INSTANTID_SAMPLING = ("**Sampling with InstantID's weights** (SDXL). *IdentityNet* runs on every face's crop at "
                      "1024 pixels and the adapter adds each person's identity inside their own region. Files: "
                      "InstantID's `ControlNetModel/diffusion_pytorch_model.safetensors` saved as "
                      "`models/controlnet/instantid_identitynet.safetensors`, `ip-adapter.bin` in `models/instantid` "
                      "(InstantID's checkpoints are for research use only).")


def group(w: Workflow, title: str, x: int, width: int, height: int, note: str | None = None):
    w.group(title, x, 0, width, height, GROUP_COLOURS[title], note or NOTES[title])


def sd15_sampling(w: Workflow, prompt: str, people, x: int = 1420):
    """The sampling group's loaders and RealisID's two branches (then `finish`)."""
    ckpt = w.node("CheckpointLoaderSimple", "checkpoint (SD1.5)", (x + 20, 170), (320, 100), models=[SD15],
                  ckpt_name=SD15["name"])
    positive = w.node("CLIPTextEncode", "prompt", (x + 20, 290), (320, 150), clip=ckpt.out(1), text=prompt)
    negative = w.node("CLIPTextEncode", "negative prompt", (x + 20, 460), (320, 130), clip=ckpt.out(1), text=NEGATIVE)
    global_net = w.node("RealisID_LoadControlNet", "global branch ControlNet", (x + 20, 610), (320, 90),
                        control_net_name="realisid_global_sd15.safetensors", kind="auto (from the file)")
    local_net = w.node("RealisID_LoadControlNet", "local branch ControlNet", (x + 20, 720), (320, 90),
                       control_net_name="realisid_local_sd15.safetensors", kind="auto (from the file)")
    projector = w.node("RealisID_IDProjectorLoader", "ID projector", (x + 20, 830), (320, 70),
                       projector_name="realisid_id_projector_sd15.safetensors")
    steered = w.node("RealisID_ApplyGlobalBranch", "global branch", (x + 360, 170), (300, 170),
                     positive=positive.out(0), negative=negative.out(0), control_net=global_net.out(0), people=people,
                     strength=1.0, start_percent=0.0, end_percent=1.0)
    steered = w.node("RealisID_ApplyLocalBranch", "local branch", (x + 360, 360), (300, 230),
                     positive=steered.out(0), negative=steered.out(1), control_net=local_net.out(0), people=people,
                     strength=1.0, start_percent=0.0, end_percent=1.0, working_size="as trained", feather=0.15,
                     id_projector=projector.out(0))
    return ckpt, steered


def finish(w: Workflow, model, vae, positive, negative, latent, prefix: str, cfg: float, x: int = 1420):
    """Sampler, decode and the saved picture: the workflow's only output."""
    sampled = w.node("KSampler", "sampler", (x + 360, 610), (300, 290), model=model, seed=42, steps=30, cfg=cfg,
                     sampler_name="dpmpp_2m", scheduler="karras", positive=positive, negative=negative,
                     latent_image=latent.out(0), denoise=1.0)
    image = w.node("VAEDecode", None, (x + 680, 170), (210, 50), samples=sampled.out(0), vae=vae)
    w.node("SaveImage", "result", (x + 680, 250), (440, 520), images=image.out(0), filename_prefix=prefix)


def face_analysis_models(w: Workflow):
    return w.node("RealisID_FaceAnalysisLoader", "face analysis models", (20, 170), (320, 130),
                  pack="antelopev2", provider="auto", detection_size="640")


def three_groups(w: Workflow, bottom: int, sampling_note: str | None = None):
    for title, x, width in (("people", 0, 680), ("places and poses", 700, 700), ("sampling", 1420, 1160)):
        group(w, title, x, width, bottom, sampling_note if title == "sampling" else None)


def person_identity(w: Workflow, analyzer, k: int, y: int, photo: str):
    photos = w.node("LoadImage", f"person {k} photo", (20, y), (320, 340), image=photo)
    return w.node("RealisID_Identity", f"person {k} identity", (360, y), (300, 340), analyzer=analyzer.out(0),
                  images=photos.out(0), photo_without_face="error")


def places_and_poses(w: Workflow, width: int, height: int, locations: str, analyzer, identities, x: int = 700,
                     own_poses: bool = False, pose_photo_name: str = "realisid_pose.png"):
    """The places-and-poses group: picture size → faces canvas, a pose photo, one Person per identity, people.
    `own_poses`: person k takes the pose of face k of the pose photo (else everybody the largest face's)."""
    latent = w.node("EmptyLatentImage", "picture size", (x + 20, 170), (300, 110), width=width, height=height,
                    batch_size=1)
    faces = w.node("RealisID_LocationGuidance", "faces", (x + 340, 170), (340, 520), locations=locations, width=512,
                   height=512, latent=latent.out(0))
    pose_photo = w.node("LoadImage", "pose photo", (x + 20, 300), (300, 320), image=pose_photo_name)
    pose_face = w.node("RealisID_FaceAnalysis", "pose faces" if own_poses else "pose face", (x + 20, 640), (300, 300),
                       analyzer=analyzer.out(0), images=pose_photo.out(0),
                       selection="all, left to right" if own_poses else "largest", index=0, threshold=0.5,
                       require_face=True)
    poses = [w.node("RealisID_PoseExpression", f"pose {k}" if own_poses else "pose",
                    (x + 340, 710 + 250 * (k - 1)), (340, 230), driving_faces=pose_face.out(0),
                    face_number=k if own_poses else 1, mirror=False)
             for k in (range(1, len(identities) + 1) if own_poses else (1,))]
    top = 710 + 250 * len(poses)
    persons = {}
    for k, identity in enumerate(identities, 1):
        pose = poses[k - 1] if own_poses else poses[0]
        persons[f"person_{k}"] = w.node(
            "RealisID_Person", f"person {k}", (x + 20 + 340 * ((k - 1) % 2), top + 200 * ((k - 1) // 2)), (320, 180),
            location_number=k, box="0.5 0.4 0.3 0.3", strength=1.0, locations=faces.out(0), identity=identity.out(0),
            pose=pose.out(0)).out(0)
    rows = (len(identities) + 1) // 2
    people = w.node("RealisID_People", "people", (x + 20, top + 200 * rows), (660, 420), **persons)
    return latent, people.out(0), top + 200 * rows + 440


def two_people() -> Workflow:
    w = Workflow("RealisID_two_people_placed_by_dragging_each_from_their_own_photo_SD1.5")
    analyzer = face_analysis_models(w)
    identities = [person_identity(w, analyzer, k, 320 + 380 * (k - 1), f"realisid_person_{k}.png") for k in (1, 2)]
    latent, people, bottom = places_and_poses(w, 768, 512, "0.34 0.42 0.16\n0.67 0.44 0.15", analyzer, identities)
    ckpt, steered = sd15_sampling(w, "two friends laughing on a park bench, candid photo, natural light, 50mm", people)
    finish(w, ckpt.out(0), ckpt.out(2), steered.out(0), steered.out(1), latent, "RealisID_two_people", 6.0)
    three_groups(w, bottom)
    return w


def small_face() -> Workflow:
    w = Workflow("RealisID_one_small_face_in_a_wide_shot_keeps_its_identity_SD1.5")
    analyzer = face_analysis_models(w)
    identity = person_identity(w, analyzer, 1, 320, "realisid_person_1.png")
    latent, people, bottom = places_and_poses(w, 768, 512, "0.62 0.36 0.08", analyzer, [identity])
    ckpt, steered = sd15_sampling(w, "a woman hiking on a mountain ridge, wide shot, golden hour, photo", people)
    finish(w, ckpt.out(0), ckpt.out(2), steered.out(0), steered.out(1), latent, "RealisID_small_face", 6.0)
    three_groups(w, bottom)
    return w


def instantid_sampling(w: Workflow, prompt: str, people, latent, prefix: str, x: int = 1420):
    """Sampling with InstantID's files: SDXL, IdentityNet on the face crops, the adapter's regional identity."""
    ckpt = w.node("CheckpointLoaderSimple", "checkpoint (SDXL)", (x + 20, 170), (320, 100), models=[SDXL],
                  ckpt_name=SDXL["name"])
    positive = w.node("CLIPTextEncode", "prompt", (x + 20, 290), (320, 150), clip=ckpt.out(1), text=prompt)
    negative = w.node("CLIPTextEncode", "negative prompt", (x + 20, 460), (320, 130), clip=ckpt.out(1), text=NEGATIVE)
    identitynet = w.node("RealisID_LoadControlNet", "IdentityNet", (x + 20, 610), (320, 90), models=[IDENTITYNET],
                         control_net_name=IDENTITYNET["name"], kind="auto (from the file)")
    adapter = w.node("RealisID_InstantIDLoader", "InstantID adapter", (x + 20, 720), (320, 70),
                     models=[INSTANTID_ADAPTER], adapter_name=INSTANTID_ADAPTER["name"])
    steered = w.node("RealisID_ApplyInstantID", "InstantID through the local branch", (x + 360, 170), (300, 420),
                     model=ckpt.out(0), positive=positive.out(0), negative=negative.out(0),
                     control_net=identitynet.out(0), instantid=adapter.out(0), people=people, cn_strength=0.8,
                     cn_start_percent=0.0, cn_end_percent=1.0, ip_weight=0.8, ip_start_percent=0.0,
                     ip_end_percent=1.0, working_size="as trained", feather=0.15, region_margin=1.5, uncond_noise=0.0)
    finish(w, steered.out(0), ckpt.out(2), steered.out(1), steered.out(2), latent, prefix, 5.0, x)


def instantid_small_face() -> Workflow:
    w = Workflow("RealisID_InstantID_one_small_face_in_a_wide_shot_SDXL")
    analyzer = face_analysis_models(w)
    identity = person_identity(w, analyzer, 1, 320, "realisid_person_1.png")
    latent, people, bottom = places_and_poses(w, 1536, 1024, "0.62 0.36 0.07", analyzer, [identity])
    instantid_sampling(w, "a man walking on a beach at sunset, wide shot, photo", people, latent,
                       "RealisID_InstantID_small_face")
    three_groups(w, bottom, INSTANTID_SAMPLING)
    return w


def instantid_three_people() -> Workflow:
    w = Workflow("RealisID_InstantID_three_people_each_from_their_own_photo_with_their_own_pose_SDXL")
    analyzer = face_analysis_models(w)
    identities = [person_identity(w, analyzer, k, 320 + 380 * (k - 1), f"realisid_person_{k}.png") for k in (1, 2, 3)]
    latent, people, bottom = places_and_poses(w, 1536, 1024, "0.22 0.42 0.16\n0.5 0.38 0.15\n0.78 0.44 0.16",
                                              analyzer, identities, own_poses=True,
                                              pose_photo_name="realisid_group_pose.png")
    instantid_sampling(w, "three friends at a cafe table, candid photo, natural light", people, latent,
                       "RealisID_InstantID_three_people")
    three_groups(w, bottom, INSTANTID_SAMPLING)
    return w


# ---- FLUX with InfiniteYou's files (definitions for docs/flux.md's examples)
HF_INFU = "https://huggingface.co/ByteDance/InfiniteYou/resolve/main/infu_flux_v1.0/aes_stage2/"
FLUX_DEV = {"name": "flux1-dev.safetensors", "directory": "diffusion_models",
            "url": "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors"}
FLUX_AE = {"name": "ae.safetensors", "directory": "vae",
           "url": "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors"}
CLIP_L = {"name": "clip_l.safetensors", "directory": "text_encoders",
          "url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors"}
T5XXL = {"name": "t5xxl_fp16.safetensors", "directory": "text_encoders",
         "url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors"}
INFUSENET = {"name": "aes_stage2/InfuseNetModel/diffusion_pytorch_model.safetensors", "directory": "infinite_you",
             "url": HF_INFU + "InfuseNetModel/diffusion_pytorch_model.safetensors"}
INFU_PROJECTOR = {"name": "aes_stage2/image_proj_model.bin", "directory": "infinite_you",
                  "url": HF_INFU + "image_proj_model.bin"}
IR_SE50 = {"name": "recognition_arcface_ir_se50.pth", "directory": "facexlib",
           "url": "https://github.com/xinntao/facexlib/releases/download/v0.1.0/recognition_arcface_ir_se50.pth"}
INFINITEYOU_PEOPLE = ("**People.** Load one or a few photos of each person into *person k photo*. antelopev2 "
                      "(`models/insightface/models/antelopev2`) finds the face and its keypoints; facexlib's IR-SE50 "
                      "(`models/facexlib/recognition_arcface_ir_se50.pth`) makes the identity InfiniteYou reads.")
INFINITEYOU_SAMPLING = ("**Sampling with InfiniteYou's weights** (FLUX.1-dev at CFG 1; FLUX's guidance is 3.5 "
                        "unless a FluxGuidance node sets it). "
                        "*InfuseNet* runs on every face's crop at 1024 pixels with that person's identity and pose. "
                        "Files: `InfuseNetModel/` and `image_proj_model.bin` of InfiniteYou's aes_stage2 in "
                        "`models/infinite_you/aes_stage2/` (CC BY-NC 4.0, non-commercial), FLUX.1-dev, its VAE and "
                        "text encoders. See docs/flux.md.")


def infiniteyou_identity(w: Workflow, analyzer, recogniser, k: int, y: int, photo: str):
    photos = w.node("LoadImage", f"person {k} photo", (20, y), (320, 340), image=photo)
    return w.node("RealisID_IdentityIRSE50", f"person {k} identity", (360, y), (300, 340), analyzer=analyzer.out(0),
                  recogniser=recogniser.out(0), images=photos.out(0), photo_without_face="error")


def infiniteyou_people(w: Workflow, count: int):
    analyzer = face_analysis_models(w)
    recogniser = w.node("RealisID_LoadFaceRecogniser", "face recogniser (IR-SE50)", (360, 170), (300, 90),
                        models=[IR_SE50], recogniser_name=IR_SE50["name"])
    identities = [infiniteyou_identity(w, analyzer, recogniser, k, 320 + 380 * (k - 1), f"realisid_person_{k}.png")
                  for k in range(1, count + 1)]
    return analyzer, identities


def infiniteyou_sampling(w: Workflow, prompt: str, people, latent, prefix: str, x: int = 1420):
    """Sampling with InfiniteYou's files: FLUX.1-dev, InfuseNet on the face crops."""
    unet = w.node("UNETLoader", "FLUX.1-dev", (x + 20, 170), (320, 90), models=[FLUX_DEV], unet_name=FLUX_DEV["name"],
                  weight_dtype="default")
    clip = w.node("DualCLIPLoader", "text encoders (FLUX)", (x + 20, 280), (320, 110), models=[CLIP_L, T5XXL],
                  clip_name1=CLIP_L["name"], clip_name2=T5XXL["name"], type="flux", device="default")
    vae = w.node("VAELoader", "VAE (FLUX)", (x + 20, 410), (320, 60), models=[FLUX_AE], vae_name=FLUX_AE["name"])
    positive = w.node("CLIPTextEncode", "prompt", (x + 20, 490), (320, 150), clip=clip.out(0), text=prompt)
    negative = w.node("CLIPTextEncode", "negative prompt", (x + 20, 660), (320, 100), clip=clip.out(0), text="")
    infusenet = w.node("RealisID_LoadInfuseNet", "InfuseNet", (x + 20, 780), (320, 60), models=[INFUSENET],
                       infusenet_name=INFUSENET["name"])
    projector = w.node("RealisID_LoadInfiniteYouProjector", "InfiniteYou projector", (x + 20, 860), (320, 60),
                       models=[INFU_PROJECTOR], projector_name=INFU_PROJECTOR["name"])
    steered = w.node("RealisID_ApplyInfiniteYou", "InfiniteYou through the local branch", (x + 360, 170), (300, 420),
                     model=unet.out(0), positive=positive.out(0), negative=negative.out(0), control_net=infusenet.out(0),
                     projector=projector.out(0), people=people, vae=vae.out(0), strength=1.0, start_percent=0.0,
                     end_percent=1.0, working_size=128, feather=0.15, infusenet_guidance=1.0)
    sampled = w.node("KSampler", "sampler", (x + 360, 610), (300, 290), model=unet.out(0), seed=42, steps=30, cfg=1.0,
                     sampler_name="euler", scheduler="simple", positive=steered.out(0), negative=steered.out(1),
                     latent_image=latent.out(0), denoise=1.0)
    image = w.node("VAEDecode", None, (x + 680, 170), (210, 50), samples=sampled.out(0), vae=vae.out(0))
    w.node("SaveImage", "result", (x + 680, 250), (440, 520), images=image.out(0), filename_prefix=prefix)


def infiniteyou_groups(w: Workflow, bottom: int):
    for title, x, width in (("people", 0, 680), ("places and poses", 700, 700), ("sampling", 1420, 1160)):
        group(w, title, x, width, bottom, {"people": INFINITEYOU_PEOPLE, "sampling": INFINITEYOU_SAMPLING}.get(title))


def infiniteyou_small_face() -> Workflow:
    w = Workflow("RealisID_InfiniteYou_one_small_face_in_a_wide_shot_FLUX")
    analyzer, identities = infiniteyou_people(w, 1)
    latent, people, bottom = places_and_poses(w, 1536, 1024, "0.62 0.36 0.07", analyzer, identities)
    infiniteyou_sampling(w, "a man walking on a beach at sunset, wide shot, photo", people, latent,
                         "RealisID_InfiniteYou_small_face")
    infiniteyou_groups(w, bottom)
    return w


def infiniteyou_three_people() -> Workflow:
    w = Workflow("RealisID_InfiniteYou_three_people_each_from_their_own_photo_with_their_own_pose_FLUX")
    analyzer, identities = infiniteyou_people(w, 3)
    latent, people, bottom = places_and_poses(w, 1536, 1024, "0.22 0.42 0.16\n0.5 0.38 0.15\n0.78 0.44 0.16",
                                              analyzer, identities, own_poses=True,
                                              pose_photo_name="realisid_group_pose.png")
    infiniteyou_sampling(w, "three friends at a cafe table, candid photo, natural light", people, latent,
                         "RealisID_InfiniteYou_three_people")
    infiniteyou_groups(w, bottom)
    return w


EXAMPLES = (two_people, small_face, instantid_small_face, instantid_three_people, infiniteyou_small_face,
            infiniteyou_three_people)


def thumbnail(w: Workflow, path: Path):
    """The template's picture: where the people go, numbered, each with a neutral face, as the people preview draws it."""
    import numpy as np
    from PIL import Image

    from realisid_core.faces.pose import frontal_pose
    from realisid_core.signals.previews import draw_people
    from realisid_core.people.locations import parse_locations
    faces = next(n for n in w.api.values() if n["class_type"] == "RealisID_LocationGuidance")
    size = next(n for n in w.api.values() if n["class_type"] == "EmptyLatentImage")["inputs"]
    locations = parse_locations(faces["inputs"]["locations"], size["width"], size["height"])
    picture = draw_people(locations, [frontal_pose()] * locations.count)[0].numpy()
    Image.fromarray((picture * 255).round().astype(np.uint8)).resize((384, 256)).save(path, quality=88)


def main():
    from tools.host import host_path, load_pack, use_host
    use_host(host_path())
    load_pack()
    import nodes
    from tools.workflow_format import api_to_ui, object_info_from_classes
    info = object_info_from_classes(nodes.NODE_CLASS_MAPPINGS)
    folder = REPO / "workflows"
    (folder / "api").mkdir(parents=True, exist_ok=True)
    for stale in list(folder.glob("*.json")) + list(folder.glob("*.jpg")) + list((folder / "api").glob("*.json")):
        stale.unlink()
    for example in EXAMPLES:
        w = example()
        (folder / "api" / f"{w.name}.json").write_text(json.dumps(w.api, indent=2) + "\n")
        ui = api_to_ui(w.api, info, w.layout, w.groups, w.notes, w.models)
        (folder / f"{w.name}.json").write_text(json.dumps(ui, indent=2) + "\n")
        thumbnail(w, folder / f"{w.name}.jpg")
        print(f"wrote workflows/{w.name}.json (+ .jpg) and workflows/api/{w.name}.json")


if __name__ == "__main__":
    main()
