"""The example workflows in ComfyUI's real editor: listed as the pack's templates with thumbnails, they load
with no missing node, the prompt *Run* would queue is their API twin, and the missing-model dialog lists
the public files they need with their download addresses."""
import json
import time
from pathlib import Path

import pytest
import requests

from fixtures.browser_wait import wait_for
from fixtures.comfy_server import PACK_DIR_NAME

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXAMPLES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))


CLOSE_DIALOGS = """document.querySelectorAll('.p-dialog-close-button').forEach(b => b.click());
    return document.querySelectorAll('.p-dialog').length === 0;"""


def open_clean(browser, url):
    """The editor with no workflow restored from an earlier page and no dialog open."""
    browser.get(url)
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.get(url)
    wait_for(browser, "return !!(window.app?.graph && window.LiteGraph?.registered_node_types?.['RealisID_People'])",
             timeout=60, what="ComfyUI's editor with the RealisID nodes")
    time.sleep(1)  # a dialog about the default graph may still be on its way
    wait_for(browser, CLOSE_DIALOGS, what="no dialog open")


@pytest.fixture
def editor(browser, comfy):
    """A freshly opened editor (a dialog shown for one workflow is not shown again in the same page); left clean
    for the other browser tests, which share the browser."""
    open_clean(browser, comfy.url)
    yield browser
    browser.execute_script("app.graph.clear();")
    open_clean(browser, comfy.url)


def test_examples_are_the_packs_templates_with_thumbnails(comfy):
    listed = requests.get(f"{comfy.url}/api/workflow_templates", timeout=30).json()
    assert sorted(listed[PACK_DIR_NAME]) == EXAMPLES
    for name in EXAMPLES:
        thumb = requests.get(f"{comfy.url}/api/workflow_templates/{PACK_DIR_NAME}/{name}.jpg", timeout=30)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # a JPEG


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_whole_and_queues_its_api_twin(editor, name):
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    twin = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    missing = editor.execute_async_script("""
        const [graph, done] = [arguments[0], arguments[arguments.length - 1]];
        app.loadGraphData(graph).then(() => done(app.graph.nodes
            .filter(n => !(n.type in LiteGraph.registered_node_types)).map(n => n.type)));""", ui)
    assert missing == []
    queued = editor.execute_async_script("""
        const done = arguments[arguments.length - 1];
        app.graphToPrompt().then(p => done(p.output));""")
    assert {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in queued.items()} == \
        {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in twin.items()}
    titles = {k: v["_meta"]["title"] for k, v in queued.items()}
    assert all(titles[k] == v["_meta"]["title"] for k, v in twin.items() if "_meta" in v)
    # the server has no models: the missing-model dialog names every recorded file with where to get it
    recorded = [m for n in ui["nodes"] for m in n.get("properties", {}).get("models", [])]
    checkpoint = next(m["name"] for m in recorded if m["directory"] in ("checkpoints", "diffusion_models"))
    dialog = wait_for(editor, "const d = [...document.querySelectorAll('.p-dialog')].map(e => e.innerText).join(' ');"
                              f"return d.includes({json.dumps(checkpoint)}) && d;", what="the missing-model dialog")
    for model in recorded:
        assert f"{model['directory']} / {model['name']}" in dialog
