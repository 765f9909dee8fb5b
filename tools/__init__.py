"""Developer tools: example-workflow generation and ComfyUI workflow format conversion."""
