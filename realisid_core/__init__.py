"""RealisID engine: pure torch/numpy, importable without ComfyUI."""

__version__ = "0.1.0"
