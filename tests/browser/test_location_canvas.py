"""The face-placement canvas of RealisID Location Guidance in ComfyUI's own editor, in a real browser.

Headless Chromium against a real ComfyUI server with the pack: add the node, drag and resize boxes
with real mouse actions, check the `locations` widget's text, the prompt *Run* queues, a run's
result, the saved workflow's round trip, and that editing the text redraws the canvas."""
from __future__ import annotations

import time

import pytest
import requests

from fixtures.browser_wait import wait_for
from realisid_core.errors import RealisIDInputError
from realisid_core.people.locations import parse_locations

pytestmark = pytest.mark.usefixtures("browser")

WIDTH, HEIGHT = 768, 512            # the Empty Latent Image's size: the picture's frame
PAD = 8                             # web/location_canvas.js: CSS px around the frame
RED = (255, 90, 90)                 # person 1 (PERSON_COLOURS[0])
START = "0.3 0.5 0.25  # the bride\n0.7 0.5 0.2 0.3"


def parse(text, width=WIDTH, height=HEIGHT):
    return parse_locations(text, width, height).boxes.tolist()


def flat(rows):
    return [v for row in rows for v in row]


@pytest.fixture(scope="module")
def editor(browser, comfy):
    """The editor with an Empty Latent Image (768×512) wired into a new Location Guidance node, whose
    preview goes to a Preview Image; the graph at 100% zoom."""
    browser.get(comfy.url)
    wait_for(browser, "return !!(window.app?.graph && window.LiteGraph?.registered_node_types"
                      "?.['RealisID_LocationGuidance'] && app.extensions?.some(e => e.name === 'RealisID.LocationCanvas'))",
             timeout=60, what="ComfyUI's editor with the RealisID extension")
    browser.execute_script("""
        app.graph.clear();
        const latent = LiteGraph.createNode('EmptyLatentImage');
        latent.pos = [20, 60];
        app.graph.add(latent);
        latent.widgets.find(w => w.name === 'width').value = arguments[1];
        latent.widgets.find(w => w.name === 'height').value = arguments[2];
        const node = LiteGraph.createNode('RealisID_LocationGuidance');
        node.pos = [320, 60];
        app.graph.add(node);
        node.setSize([420, 600]);
        latent.connect(0, node, node.inputs.findIndex(i => i.name === 'latent'));
        const preview = LiteGraph.createNode('PreviewImage');
        preview.pos = [780, 60];
        app.graph.add(preview);
        node.connect(node.outputs.findIndex(o => o.name === 'preview'), preview, 0);
        node.widgets.find(w => w.name === 'locations').value = arguments[0];
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [0, 0];
        app.graph.setDirtyCanvas(true, true);
    """, START, WIDTH, HEIGHT)
    wait_for(browser, "const n = app.graph.findNodesByType('RealisID_LocationGuidance')[0];"
                      "const c = n?.realisidLocations?.canvas; return !!c && c.isConnected && c.clientWidth > 100",
             what="the location canvas on the node")
    return browser


def node_js(expr: str) -> str:
    return f"const n = app.graph.findNodesByType('RealisID_LocationGuidance')[0]; const lc = n.realisidLocations; return {expr};"


def text(driver) -> str:
    return driver.execute_script(node_js("n.widgets.find(w => w.name === 'locations').value"))


def frame_on_screen(driver):
    """The picture's frame in viewport (client) pixels, computed here from the canvas element's box."""
    rect, cw, ch = driver.execute_script(node_js("[lc.canvas.getBoundingClientRect().toJSON(), "
                                                 "lc.canvas.clientWidth, lc.canvas.clientHeight]"))
    zoom = rect["width"] / cw
    scale = min((cw - 2 * PAD) / WIDTH, (ch - 2 * PAD) / HEIGHT)
    w, h = WIDTH * scale, HEIGHT * scale
    return {"x": rect["left"] + (cw - w) / 2 * zoom, "y": rect["top"] + (ch - h) / 2 * zoom,
            "w": w * zoom, "h": h * zoom}


def to_screen(f, x, y):
    return f["x"] + x * f["w"], f["y"] + y * f["h"]


def drag(driver, start, end, steps=6):
    """Press the left button at `start`, move to `end` in steps, release: real pointer input."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    actions = ActionBuilder(driver, duration=20)
    pointer = actions.pointer_action
    pointer.move_to_location(round(start[0]), round(start[1]))
    pointer.pointer_down()
    for k in range(1, steps + 1):
        pointer.move_to_location(round(start[0] + (end[0] - start[0]) * k / steps),
                                 round(start[1] + (end[1] - start[1]) * k / steps))
    pointer.pointer_up()
    actions.perform()


def pixel(driver, x, y):
    """The canvas's RGBA at viewport point (x, y), the brightest-red pixel within 2 px."""
    return driver.execute_script(node_js("""(() => {
        const r = lc.canvas.getBoundingClientRect();
        const kx = lc.canvas.width / r.width, ky = lc.canvas.height / r.height;
        const px = Math.round((arguments[0] - r.left) * kx), py = Math.round((arguments[1] - r.top) * ky);
        const data = lc.canvas.getContext('2d').getImageData(px - 2, py - 2, 5, 5).data;
        let best = null;
        for (let i = 0; i < data.length; i += 4) {
            const p = [data[i], data[i + 1], data[i + 2]];
            const d = Math.abs(p[0] - 255) + Math.abs(p[1] - 90) + Math.abs(p[2] - 90);
            if (!best || d < best[3]) best = [...p, d];
        }
        return best;
    })()"""), x, y)


def is_red(p, tolerance=40):
    return p[3] <= tolerance


def test_canvas_shows_the_latent_frame_and_numbered_faces(editor):
    frame, status, faces, disabled = editor.execute_script(node_js(
        "[lc.state.frame, lc.status.textContent, lc.faces.map(f => [f.person, f.cx, f.cy, f.w, f.h]),"
        " n.widgets.filter(w => ['width', 'height'].includes(w.name)).map(w => w.disabled)]"))
    assert (frame["width"], frame["height"]) == (WIDTH, HEIGHT)
    assert "768×512 from latent" in status
    assert disabled == [True, True]  # the node's own width/height are ignored while the latent gives the size
    expected = parse(START)
    assert [f[0] for f in faces] == [1, 2]
    assert flat(f[1:] for f in faces) == pytest.approx(flat(expected), abs=1e-9)
    # Person 1's box is drawn in person 1's colour at the place the text says.
    f = frame_on_screen(editor)
    cx, cy, w, h = expected[0]
    assert is_red(pixel(editor, *to_screen(f, cx - w / 2, cy)))


def test_js_reads_the_text_as_the_node_does(editor):
    texts = ["0.5 0.4 0.2  # the bride\n\n0.8, 0.6, 0.1, 0.3", "0.1 0.1 0.05\n0.9 0.9 0.3 0.1\n.5 .5 1e-1",
             "0.5 0.5", "half half 0.2", "1.8 0.5 0.2", "0.5 0.5 0", "", "\n".join(["0.5 0.5 0.1"] * 9)]
    for source in texts:
        js = editor.execute_async_script("""
            const done = arguments[arguments.length - 1];
            import('/extensions/ComfyUI-RealisID/location_text.js').then(m => {
                const r = m.parseLocations(arguments[0], arguments[1], arguments[2]);
                done([r.faces.map(f => [f.cx, f.cy, f.w, f.h]), r.errors.length]);
            });""", source, WIDTH, HEIGHT)
        try:
            expected, python_error = parse(source), False
        except RealisIDInputError:
            expected, python_error = None, True
        assert (js[1] > 0) == python_error, source
        if not python_error:
            assert flat(js[0]) == pytest.approx(flat(expected), abs=1e-12), source


def test_drag_moves_a_face_and_rewrites_only_its_line(editor):
    f = frame_on_screen(editor)
    cx, cy, w, h = parse(text(editor))[0]
    start = to_screen(f, cx, cy)
    drag(editor, start, (start[0] + 60, start[1] - 30))
    lines = text(editor).split("\n")
    assert lines[1] == "0.7 0.5 0.2 0.3"            # person 2 untouched, as written
    assert lines[0].endswith("  # the bride")       # the note stays
    assert len(lines[0].split("#")[0].split()) == 3  # a square face stays 'x y size'
    moved = parse(text(editor))[0]
    assert moved[0] == pytest.approx(cx + 60 / f["w"], abs=0.004)
    assert moved[1] == pytest.approx(cy - 30 / f["h"], abs=0.004)
    assert moved[2:] == pytest.approx([w, h], abs=1e-3)
    # The canvas follows: person 1's left edge is red at its new place, not at its old one.
    assert is_red(pixel(editor, *to_screen(f, moved[0] - moved[2] / 2, moved[1])))
    assert not is_red(pixel(editor, *to_screen(f, cx - w / 2, cy)))


def set_zoom(driver, scale, offset):
    """Zoom and pan the graph; wait until the canvas element follows (ComfyUI moves DOM widgets a frame later)."""
    driver.execute_script("app.canvas.ds.scale = arguments[0]; app.canvas.ds.offset = arguments[1];"
                          "app.graph.setDirtyCanvas(true, true);", scale, offset)
    wait_for(driver, node_js(f"Math.abs(lc.canvas.getBoundingClientRect().width - lc.canvas.clientWidth * {scale}) < 0.5"),
             what=f"the canvas at zoom {scale}")
    time.sleep(0.2)


def test_drag_a_corner_resizes_with_the_opposite_corner_fixed(editor):
    # At 150% zoom: the canvas element is scaled with the graph, pointer positions must follow.
    set_zoom(editor, 1.5, [-250, -180])
    f = frame_on_screen(editor)
    assert f["w"] > 400  # the frame is drawn larger on screen
    cx, cy, w, h = parse(text(editor))[1]
    corner = to_screen(f, cx + w / 2, cy + h / 2)
    drag(editor, corner, (corner[0] + 24, corner[1] + 30))
    line = text(editor).split("\n")[1]
    assert len(line.split()) == 4
    ncx, ncy, nw, nh = parse(text(editor))[1]
    assert nw == pytest.approx(w + 24 / f["w"], abs=0.004)
    assert nh == pytest.approx(h + 30 / f["h"], abs=0.004)
    assert ncx - nw / 2 == pytest.approx(cx - w / 2, abs=0.003)  # top-left corner stays
    assert ncy - nh / 2 == pytest.approx(cy - h / 2, abs=0.003)
    set_zoom(editor, 1, [0, 0])


def test_run_queues_the_dragged_locations(editor, comfy):
    current = text(editor)
    prompt = editor.execute_async_script("""
        const done = arguments[arguments.length - 1];
        app.graphToPrompt().then(p => done(p.output));""")
    node_id = str(editor.execute_script(node_js("n.id")))
    inputs = prompt[node_id]["inputs"]
    assert inputs["locations"] == current
    assert set(inputs) == {"locations", "width", "height", "latent"}  # the canvas adds nothing to the prompt
    assert inputs["latent"][1] == 0
    # Run it: the server's run uses the text and reports the frame it used back to the canvas.
    editor.execute_script("app.queuePrompt(0, 1)")
    run = wait_for(editor, node_js("lc.lastRun"), timeout=60, what="the run's result on the canvas")
    assert run["frame"] == {"width": WIDTH, "height": HEIGHT, "source": "latent"}
    history = requests.get(f"{comfy.url}/history", timeout=30).json()
    (entry,) = history.values()
    assert entry["prompt"][2][node_id]["inputs"]["locations"] == current
    assert entry["outputs"][node_id]["images"][0]["type"] == "temp"
    # The canvas is the node's preview: ComfyUI's own image preview is not added under it.
    time.sleep(0.5)
    assert editor.execute_script(node_js("n.widgets.map(w => w.name)")) == ["locations", "width", "height", "location_canvas"]
    assert not editor.execute_script(node_js("n.imgs?.length"))


def test_editing_the_text_redraws_the_canvas(editor):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    f = frame_on_screen(editor)
    old = parse(text(editor))[0]
    textarea = editor.execute_script(node_js("n.widgets.find(w => w.name === 'locations').element"))
    textarea.click()
    ActionChains(editor).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
    textarea.send_keys("0.75 0.3 0.3\n0.2 0.7 0.2")
    wait_for(editor, node_js("lc.faces.length === 2 && lc.faces[1].cx === 0.2"), what="the canvas to re-read the text")
    new = parse(text(editor))[0]
    assert new == pytest.approx([0.75, 0.3, 0.3 * 512 / 768, 0.3])
    assert is_red(pixel(editor, *to_screen(f, new[0] - new[2] / 2, new[1])))
    assert not is_red(pixel(editor, *to_screen(f, old[0] - old[2] / 2, old[1])))


def test_add_by_double_click_and_delete_with_the_key(editor):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    f = frame_on_screen(editor)
    spot = to_screen(f, 0.5, 0.8)
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    actions = ActionBuilder(editor)
    actions.pointer_action.move_to_location(round(spot[0]), round(spot[1])).double_click()
    actions.perform()
    wait_for(editor, node_js("lc.faces.length === 3"), what="a third face")
    added = parse(text(editor))[2]
    assert added[:2] == pytest.approx([0.5, 0.8], abs=0.004)
    assert text(editor).split("\n")[2].count(" ") == 2  # a square face: 'x y size'
    # Select person 2 and delete it: person 3 becomes person 2.
    cx, cy, _, _ = parse(text(editor))[1]
    drag(editor, to_screen(f, cx, cy), to_screen(f, cx, cy), steps=1)
    ActionChains(editor).send_keys(Keys.DELETE).perform()
    wait_for(editor, node_js("lc.faces.length === 2"), what="the face to be deleted")
    assert parse(text(editor))[1][:2] == pytest.approx([0.5, 0.8], abs=0.004)
    assert editor.execute_script(node_js("app.graph.nodes.length")) == 3  # Delete removed the face, not the node


def test_arrow_keys_nudge_and_buttons_swap_person_numbers(editor):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    f = frame_on_screen(editor)
    before = text(editor).split("\n")
    first = parse(text(editor))[0]
    drag(editor, to_screen(f, first[0], first[1]), to_screen(f, first[0], first[1]), steps=1)  # select person 1
    ActionChains(editor).send_keys(Keys.ARROW_RIGHT).perform()
    assert parse(text(editor))[0][0] == pytest.approx(first[0] + 0.005, abs=1e-3)
    editor.execute_script(node_js("lc.laterButton")).click()  # person 1 becomes person 2
    after = text(editor).split("\n")
    assert after[0] == before[1] and parse(after[1])[0][1] == pytest.approx(first[1], abs=1e-3)
    assert editor.execute_script(node_js("lc.selected")) == 1


def test_undo_takes_back_a_drag(editor):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    f = frame_on_screen(editor)
    before = text(editor)
    cx, cy, _, _ = parse(before)[0]
    # The scripted set-up bypassed the editor's change tracking, which a user's clicks go through.
    editor.execute_script("app.extensionManager.workflow.activeWorkflow.changeTracker.checkState()")
    drag(editor, to_screen(f, cx, cy), to_screen(f, cx + 0.1, cy + 0.1))
    assert text(editor) != before
    ActionChains(editor).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    wait_for(editor, f"return app.graph.findNodesByType('RealisID_LocationGuidance')[0]"
                     f".widgets.find(w => w.name === 'locations').value === {before!r}", what="undo")


def test_saved_workflow_round_trips(editor):
    current = text(editor)
    values = editor.execute_script(
        "return app.graph.serialize().nodes.find(n => n.type === 'RealisID_LocationGuidance').widgets_values")
    assert values == [current, 512, 512]  # the node's own widgets only: no value for the canvas
    editor.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const workflow = app.graph.serialize();
        app.loadGraphData(workflow).then(() => done(true));""")
    wait_for(editor, node_js("!!lc && lc.canvas.isConnected && lc.faces.length === 2"), what="the reloaded canvas")
    assert text(editor) == current


def test_layout_picture_from_load_image_gives_frame_and_background(editor, comfy):
    from PIL import Image
    picture = Image.new("RGB", (300, 200), (0, 200, 0))
    picture.paste((0, 0, 220), (150, 0, 300, 200))
    picture.save(comfy.root / "input" / "realisid_layout.png")
    editor.execute_script("""
        app.graph.clear();
        const load = LiteGraph.createNode('LoadImage');
        load.pos = [20, 60];
        app.graph.add(load);
        load.widgets.find(w => w.name === 'image').value = 'realisid_layout.png';
        const node = LiteGraph.createNode('RealisID_LocationGuidance');
        node.pos = [360, 60];
        app.graph.add(node);
        node.setSize([420, 600]);
        load.connect(0, node, node.inputs.findIndex(i => i.name === 'layout_image'));
        node.widgets.find(w => w.name === 'locations').value = '0.5 0.5 0.2';
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [0, 0];
        app.graph.setDirtyCanvas(true, true);""")
    frame = wait_for(editor, node_js("lc?.canvas.isConnected && lc.state.frame.width === 300 && lc.state.frame"),
                     what="the frame from the layout picture")
    assert (frame["width"], frame["height"]) == (300, 200)
    assert "300×200 from layout picture" in editor.execute_script(node_js("lc.status.textContent"))
    colour = lambda x, y: editor.execute_script(node_js("""(() => {
        const r = lc.canvas.getBoundingClientRect();
        const px = Math.round((arguments[0] - r.left) * lc.canvas.width / r.width);
        const py = Math.round((arguments[1] - r.top) * lc.canvas.height / r.height);
        return Array.from(lc.canvas.getContext('2d').getImageData(px, py, 1, 1).data.slice(0, 3));
    })()"""), x, y)
    rect, cw, ch = editor.execute_script(node_js("[lc.canvas.getBoundingClientRect().toJSON(), "
                                                 "lc.canvas.clientWidth, lc.canvas.clientHeight]"))
    scale = min((cw - 2 * PAD) / 300, (ch - 2 * PAD) / 200)
    f = {"x": rect["left"] + (cw - 300 * scale) / 2, "y": rect["top"] + (ch - 200 * scale) / 2,
         "w": 300 * scale, "h": 200 * scale}
    green, blue = colour(*to_screen(f, 0.1, 0.1)), colour(*to_screen(f, 0.9, 0.9))
    assert green[1] > 150 and green[0] < 40 and green[2] < 40, green  # the picture behind the boxes
    assert blue[2] > 150 and blue[0] < 40 and blue[1] < 40, blue
