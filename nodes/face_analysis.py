"""Face analysis nodes: load an insightface pack, find faces, make an identity from reference photos."""

import torch

import folder_paths

from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.faces.analyzer import DETECTION_SIZES, PROVIDER_CHOICES, get_analyzer
from ..realisid_core.faces.packs import DEFAULT_PACK, PACKS, find_pack_folder
from ..realisid_core.signals.previews import draw_faces
from ..realisid_core.faces.detected import SELECTIONS, Faces, select_faces
from ..realisid_core.people.identity import common_pack, join_identities, mean_identity
from .face_batches import analyze_batch, largest_faces, stack_previews
from .paths import INSIGHTFACE_FOLDER
from .previews import with_preview

LOADER = "RealisID Face Analysis Loader"
ANALYSIS = "RealisID Face Analysis"
IDENTITY = "RealisID Identity"


class RealisIDFaceAnalysisLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pack": (list(PACKS), {"default": DEFAULT_PACK,
                                   "tooltip": "insightface model pack, from models/insightface/models/<pack>."}),
            "provider": (list(PROVIDER_CHOICES), {"default": "auto",
                                                  "tooltip": "Where onnxruntime runs the models; 'auto' takes the GPU when "
                                                             "onnxruntime can use it. A fall-back to CPU is reported in the log."}),
            "detection_size": ([str(s) for s in DETECTION_SIZES], {"default": "640",
                                "tooltip": "Largest detection size; smaller sizes are retried when no face is found."}),
        }}

    RETURN_TYPES = ("FACE_ANALYZER",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = "Loads an insightface pack once per process; every node and workflow shares the loaded copy."

    def load(self, pack, provider, detection_size):
        folder = find_pack_folder(folder_paths.get_folder_paths(INSIGHTFACE_FOLDER), pack)
        return (get_analyzer(folder, pack, provider, int(detection_size)),)


class RealisIDFaceAnalysis:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "analyzer": ("FACE_ANALYZER", {"tooltip": "The face-analysis models (RealisID Face Analysis Loader)."}),
            "images": ("IMAGE", {"tooltip": "The photo(s) to find faces in."}),
            "selection": (list(SELECTIONS), {"default": SELECTIONS[0],
                          "tooltip": "Per picture: every face (left to right), the largest, or the index-th from the left."}),
            "index": ("INT", {"default": 0, "min": 0, "max": 63, "tooltip": "For 'by index': which face, counted from 0 in reading order (0 = face 1, the "
                                            "leftmost; faces above one another count top to bottom)."}),
            "threshold": ("FLOAT", {"default": 0.5, "min": 0.05, "max": 0.99, "step": 0.01,
                                    "tooltip": "Detection score a face needs."}),
            "require_face": ("BOOLEAN", {"default": True,
                                         "tooltip": "Stop with an error naming the picture when a picture has no face."}),
        }}

    RETURN_TYPES = ("FACES", "IMAGE")
    RETURN_NAMES = ("faces", "preview")
    FUNCTION = "analyze"
    CATEGORY = "RealisID/faces"
    DESCRIPTION = ("Finds faces: box, score, 5 keypoints, 68 3-D and 106 2-D landmarks, head pose, "
                   "normalised identity embedding. The preview marks the selected faces in green.")

    def analyze(self, analyzer, images, selection, index, threshold, require_face):
        pictures, found = analyze_batch(analyzer, images, threshold)
        empty = [i for i, f in enumerate(found) if not f]
        if require_face and empty:
            raise RealisIDInputError(input_name="images", problem=f"no face was found in image {empty[0] + 1}"
                                     + (f" (nor in images {[i + 1 for i in empty[1:]]})" if len(empty) > 1 else "")
                                     + f" of {len(pictures)}",
                                     fix="use a picture with a clearly visible face, lower 'threshold', or turn off 'require_face'")
        picked = select_faces(found, selection, index)
        chosen = {id(f) for f in picked}
        previews = [torch.from_numpy(draw_faces(p, f, chosen)).float() / 255 for p, f in zip(pictures, found)]
        sizes = tuple((p.shape[1], p.shape[0]) for p in pictures)
        stacked = stack_previews(previews)
        return with_preview((Faces(tuple(picked), sizes), stacked), stacked)


class RealisIDIdentity:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "analyzer": ("FACE_ANALYZER", {"tooltip": "The face-analysis models (RealisID Face Analysis Loader)."}),
            "images": ("IMAGE", {"tooltip": "One or several photos of ONE person; the largest face of each is used."}),
            "photo_without_face": (["error", "skip"], {"default": "error",
                                   "tooltip": "What to do with a photo in which no face is found."}),
        }}

    RETURN_TYPES = ("REALISID_IDENTITY", "IMAGE")
    RETURN_NAMES = ("identity", "preview")
    FUNCTION = "identify"
    CATEGORY = "RealisID/faces"
    DESCRIPTION = ("One identity from reference photos: the largest face of each photo (green in the preview), "
                   "their embeddings averaged.")

    def identify(self, analyzer, images, photo_without_face):
        used, stacked = largest_faces(analyzer, images, photo_without_face)
        used = [face for _, face in used]
        embeddings = torch.stack([torch.from_numpy(f.embedding) for f in used])
        norms = [f.embedding_norm if f.embedding_norm is not None else 1.0 for f in used]
        identity = mean_identity(embeddings, "images", norms=norms,
                                 pack=common_pack([f.pack for f in used], "images"))
        return with_preview((identity, stacked), stacked)


class RealisIDIdentityBatch:
    @classmethod
    def INPUT_TYPES(cls):
        def slot(i):
            return ("REALISID_IDENTITY", {"tooltip": f"Person {i}'s identity (RealisID Identity)."})
        return {"required": {"identity_1": slot(1)}, "optional": {f"identity_{i}": slot(i) for i in range(2, 9)}}

    RETURN_TYPES = ("REALISID_IDENTITY",)
    RETURN_NAMES = ("identities",)
    FUNCTION = "join"
    CATEGORY = "RealisID/faces"
    DESCRIPTION = ("Several identities in person order (identity 1 is person 1, ...), for RealisID People From "
                   "Locations.")

    def join(self, identity_1, **more):
        ordered = [identity_1] + [more[k] for k in sorted(more, key=lambda k: int(k.split("_")[1])) if more[k] is not None]
        return (join_identities(ordered, "identity_1"),)


NODE_CLASS_MAPPINGS = {
    "RealisID_FaceAnalysisLoader": RealisIDFaceAnalysisLoader,
    "RealisID_FaceAnalysis": RealisIDFaceAnalysis,
    "RealisID_Identity": RealisIDIdentity,
    "RealisID_IdentityBatch": RealisIDIdentityBatch,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_FaceAnalysisLoader": LOADER,
    "RealisID_FaceAnalysis": ANALYSIS,
    "RealisID_Identity": IDENTITY,
    "RealisID_IdentityBatch": "RealisID Identity Batch",
}
