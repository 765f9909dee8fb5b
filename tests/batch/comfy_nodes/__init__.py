"""Test-only ComfyUI additions for the batch tests (never shipped to users):

- a node that passes a picture on after a pause, so a test can kill a server or the client while
  jobs are certainly still on the servers;
- an on-prompt hook that makes the server behave like an older ComfyUI, which ignores a client's
  `prompt_id` and picks its own, for prompts whose workflow has a node titled '… (old server)'.
"""
import time


class RealisIDBatchTestPace:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "seconds": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 60.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "pace"
    CATEGORY = "RealisID/testing"

    def pace(self, images, seconds):
        time.sleep(seconds)
        return (images,)


def _like_an_old_server(json_data):
    graph = json_data.get("prompt") or {}
    if any(str((node.get("_meta") or {}).get("title", "")).endswith("(old server)") for node in graph.values()
           if isinstance(node, dict)):
        json_data.pop("prompt_id", None)
    return json_data


try:
    from server import PromptServer
    PromptServer.instance.add_on_prompt_handler(_like_an_old_server)
except (ImportError, AttributeError):  # imported outside a running server
    pass

NODE_CLASS_MAPPINGS = {"RealisIDBatchTest_Pace": RealisIDBatchTestPace}
