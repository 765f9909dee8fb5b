"""Developer tools: example-workflow generation, ComfyUI workflow format conversion, the ComfyUI host
loader (host.py) and the fake insightface packs (fake_insightface.py) the benchmarks and the tests use;
make_meanshape.py writes realisid_core/faces/meanshape_68.npy (once, from insightface's data)."""
