"""A test-only ComfyUI node for the batch tests: passes a picture on after a pause, so a test can
kill a server or the client while jobs are certainly still on the servers."""
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


NODE_CLASS_MAPPINGS = {"RealisIDBatchTest_Pace": RealisIDBatchTestPace}
