"""Model folders of the pack, registered with ComfyUI's folder_paths (idempotent)."""
import os

import folder_paths

REALISID_FOLDER = "realisid"        # RealisID weights that are not plain ControlNets (ID projectors)
INSIGHTFACE_FOLDER = "insightface"  # face-analysis packs, the folder other identity packs use
INSTANTID_FOLDER = "instantid"      # InstantID's ip-adapter.bin, the folder ComfyUI_InstantID uses


def ensure_model_folders() -> None:
    """Add models/realisid, models/insightface and models/instantid to folders ComfyUI (or
    extra_model_paths.yaml, or another pack) may already list."""
    for name in (REALISID_FOLDER, INSIGHTFACE_FOLDER, INSTANTID_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, extensions = folder_paths.folder_names_and_paths[INSTANTID_FOLDER]
    if not extensions:  # list model files only (.bin, .safetensors, ...), as ComfyUI_InstantID registers it
        folder_paths.folder_names_and_paths[INSTANTID_FOLDER] = (paths, set(folder_paths.supported_pt_extensions))


ensure_model_folders()
