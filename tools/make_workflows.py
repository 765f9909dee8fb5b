"""Write the example workflows: UI format in workflows/, API-format twins in workflows/api/.

Run from the repository root with a ComfyUI checkout (COMFYUI_PATH, else ~/comfy/ComfyUI):
    python -m tools.make_workflows
The graphs are defined once here; both files come from the same definition, with widget
order read from the node classes, so the twins cannot drift apart.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEGATIVE = "blurry, lowres, deformed face, extra fingers, watermark, text"


def start(g, prompt):
    """Checkpoint, prompts and face analyzer every example begins with."""
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors")
    positive = g.node("CLIPTextEncode", clip=ckpt.out(1), text=prompt).out(0)
    negative = g.node("CLIPTextEncode", clip=ckpt.out(1), text=NEGATIVE).out(0)
    analyzer = g.node("RealisID_FaceAnalysisLoader", pack="antelopev2", provider="auto", detection_size="640").out(0)
    return ckpt, positive, negative, analyzer


def two_people(g):
    """Two people from their photos, placed by numbers, posed and expressed like a driving photo."""
    ckpt, positive, negative, analyzer = start(g, "two friends laughing on a park bench, candid photo, natural light, 50mm")
    people = []
    for n in (1, 2):
        photos = g.node("LoadImage", image=f"realisid_person_{n}.png").out(0)
        people.append(g.node("RealisID_Identity", analyzer=analyzer, images=photos, photo_without_face="error").out(0))
    identities = g.node("RealisID_IdentityBatch", identity_1=people[0], identity_2=people[1]).out(0)
    projector = g.node("RealisID_IDProjectorLoader", projector_name="realisid_id_projector_sd15.safetensors").out(0)
    tokens = g.node("RealisID_IdentityTokens", projector=projector, identity=identities).out(0)
    return ckpt, positive, negative, analyzer, tokens, "0.34 0.42 0.16\n0.67 0.44 0.15", 768, 512, "RealisID_two_people"


def small_face(g):
    """One person as a small face in a wide shot: the local branch keeps the identity at 60 pixels."""
    ckpt, positive, negative, analyzer = start(g, "a woman hiking on a mountain ridge, wide shot, golden hour, photo")
    photos = g.node("LoadImage", image="realisid_person_1.png").out(0)
    identity = g.node("RealisID_Identity", analyzer=analyzer, images=photos, photo_without_face="error").out(0)
    projector = g.node("RealisID_IDProjectorLoader", projector_name="realisid_id_projector_sd15.safetensors").out(0)
    tokens = g.node("RealisID_IdentityTokens", projector=projector, identity=identity).out(0)
    return ckpt, positive, negative, analyzer, tokens, "0.62 0.36 0.08", 768, 512, "RealisID_small_face"


def finish(g, ckpt, positive, negative, analyzer, tokens, locations, width, height, prefix):
    """The shared second half: guidance, pose hints, both branches, sampling, saving and previews."""
    guide = g.node("RealisID_LocationGuidance", width=width, height=height, locations=locations)
    g.node("PreviewImage", images=guide.out(0))
    driving_photo = g.node("LoadImage", image="realisid_pose.png").out(0)
    driving = g.node("RealisID_FaceAnalysis", analyzer=analyzer, images=driving_photo, selection="largest", index=0,
                     threshold=0.5, require_face=True)
    hints = g.node("RealisID_PoseExpression", face_locations=guide.out(1), driving_faces=driving.out(0),
                   layout="68 landmarks", hint_size=512, margin=1.6, mirror=False)
    g.node("PreviewImage", images=hints.out(1))
    global_net = g.node("ControlNetLoader", control_net_name="realisid_global_sd15.safetensors").out(0)
    local_net = g.node("ControlNetLoader", control_net_name="realisid_local_sd15.safetensors").out(0)
    steered = g.node("RealisID_ApplyGlobalBranch", positive=positive, negative=negative, control_net=global_net,
                     guidance=guide.out(0), strength=1.0, start_percent=0.0, end_percent=1.0)
    steered = g.node("RealisID_ApplyLocalBranch", positive=steered.out(0), negative=steered.out(1),
                     control_net=local_net, face_locations=guide.out(1), hints=hints.out(0), strength=1.0,
                     start_percent=0.0, end_percent=1.0, working_size=0, margin=1.6, feather=0.15, identity=tokens)
    latent = g.node("EmptyLatentImage", width=width, height=height, batch_size=1).out(0)
    sampled = g.node("KSampler", model=ckpt.out(0), seed=42, steps=30, cfg=6.0, sampler_name="dpmpp_2m",
                     scheduler="karras", positive=steered.out(0), negative=steered.out(1), latent_image=latent,
                     denoise=1.0).out(0)
    image = g.node("VAEDecode", samples=sampled, vae=ckpt.out(2)).out(0)
    g.node("SaveImage", images=image, filename_prefix=prefix)


EXAMPLES = {"realisid_two_people": two_people, "realisid_small_face_wide_shot": small_face}


def build_api(example) -> dict:
    from comfy_execution.graph_utils import GraphBuilder
    g = GraphBuilder(prefix="")
    finish(g, *example(g))
    return g.finalize()


def main():
    sys.path.append(str(REPO / "tests"))
    from fixtures.host import host_path, load_pack, use_host
    use_host(host_path())
    load_pack()
    import nodes
    from tools.workflow_format import api_to_ui, object_info_from_classes
    info = object_info_from_classes(nodes.NODE_CLASS_MAPPINGS)
    (REPO / "workflows" / "api").mkdir(parents=True, exist_ok=True)
    for name, example in EXAMPLES.items():
        api = build_api(example)
        (REPO / "workflows" / "api" / f"{name}.json").write_text(json.dumps(api, indent=2) + "\n")
        (REPO / "workflows" / f"{name}.json").write_text(json.dumps(api_to_ui(api, info), indent=2) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json")


if __name__ == "__main__":
    main()
