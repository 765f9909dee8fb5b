"""RealisID's trainer: data preparation, training of the local and global branches and the ID projector,
export of the files the nodes load. Run as `python -m realisid_train prepare|train|export|config`.

A package of its own: it imports the engine (`realisid_core`) for every crop, paste and drawing,
so a trained branch sees at inference exactly what it saw in training; the nodes never import it.
"""
__version__ = "0.1.0"
