"""Writes realisid_core/faces/meanshape_68.npy, the mean 68-point 3-D face the pack's pose code fits
landmarks to, from the installed insightface package (run once; the file is committed):

    python -m tools.make_meanshape

Source: insightface's `insightface/data/objects/meanshape_68.pkl` (the array insightface's Landmark
model and our head_pose_68 / frontal_pose use). insightface's code and data objects are released
under the MIT License (https://github.com/deepinsight/insightface); the array is kept as it is,
in its own dtype, so the pose equals insightface's.
"""
from __future__ import annotations

import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "realisid_core", "faces",
                   "meanshape_68.npy")


def main() -> None:
    from insightface.data import get_object
    mean = np.asarray(get_object("meanshape_68.pkl"))
    assert mean.shape == (68, 3), mean.shape
    np.save(OUT, mean, allow_pickle=False)
    print(f"wrote {OUT}: {mean.shape} {mean.dtype}")


if __name__ == "__main__":
    main()
