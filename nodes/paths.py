"""Model folders of the pack, registered with ComfyUI's folder_paths (idempotent)."""
import os

import folder_paths

REALISID_FOLDER = "realisid"        # RealisID weights that are not plain ControlNets (ID projectors)
INSIGHTFACE_FOLDER = "insightface"  # face-analysis packs, the folder other identity packs use


def ensure_model_folders() -> None:
    """Add models/realisid and models/insightface to folders ComfyUI (or extra_model_paths.yaml) may already list."""
    for name in (REALISID_FOLDER, INSIGHTFACE_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))


ensure_model_folders()
