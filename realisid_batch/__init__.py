"""RealisID batch client and evaluation, over ComfyUI's HTTP API.

`python -m realisid_batch run …` sends a jobs file through an API-format workflow on one or
more ComfyUI servers, resumably (an SQLite ledger); `status` reads that ledger; `evaluate`
measures identity, place, pose and expression of the pictures it made. A client of the
server only: it never imports ComfyUI, and the nodes never import it.
"""

__version__ = "0.1.0"
