// The face-placement canvas of RealisID Location Guidance.
//
// A DOM widget under the node's `locations` text: the picture's frame (over the layout picture
// when there is one) with a numbered box per person. Drag a box to move it, drag a corner to
// resize it (Shift frees or locks the aspect), double-click empty space or press "+ face" to add
// a person, select a box and press Delete / Backspace or "delete" to remove it, the arrow keys to
// nudge it (Shift: ten times further), "◀" / "▶" to swap its person number with the one before or after.
//
// The `locations` text widget stays the source of truth: every edit here rewrites that widget's
// value (only the line of the face that changed), and every change of the text redraws the
// canvas. The canvas itself is not serialised: saved workflows and the prompt *Run* queues
// carry exactly the node's own widgets.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import {
    MAX_FACES, appendFace, formatFace, parseLocations, personColour, removeLine, replaceFace, swapLines,
} from "./location_text.js";

const NODE_TYPE = "RealisID_LocationGuidance";
const WIDGET_NAME = "location_canvas";
const PAD = 8;          // CSS px around the picture's frame
const HANDLE = 7;       // corner handle half-size, CSS px
const MIN_SIZE = 0.01;  // smallest face, fraction of the picture
const NEW_FACE = 0.2;   // size of an added face, fraction of the shorter side
const LATENT_SCALE = 8; // picture pixels per latent cell, as in the node

const STYLE = `
.realisid-locations { display: flex; flex-direction: column; gap: 4px; box-sizing: border-box; }
.realisid-locations canvas { flex: 1 1 auto; min-height: 0; width: 100%; outline: none; border-radius: 4px;
  background: #111; touch-action: none; }
.realisid-locations canvas:focus-visible { box-shadow: 0 0 0 1px var(--p-primary-color, #4fc3f7); }
.realisid-locations .bar { display: flex; gap: 4px; align-items: center; font: 11px sans-serif;
  color: var(--descrip-text, #999); min-height: 20px; }
.realisid-locations button { font: 11px sans-serif; padding: 2px 8px; border-radius: 4px; cursor: pointer;
  color: var(--input-text, #ddd); background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #444); }
.realisid-locations button:disabled { opacity: 0.4; cursor: default; }
.realisid-locations .status { flex: 1; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.realisid-locations .status.error { color: #ff7070; }
`;

function addStyle() {
    if (document.getElementById("realisid-locations-style")) return;
    const style = document.createElement("style");
    style.id = "realisid-locations-style";
    style.textContent = STYLE;
    document.head.appendChild(style);
}

// "photo.png", "sub/photo.png", "photo.png [output]" -> a /view URL.
function viewUrl(value, defaultType = "input") {
    let name = String(value ?? "").trim();
    let type = defaultType;
    const tagged = name.match(/^(.*) \[(input|output|temp)\]$/);
    if (tagged) [, name, type] = tagged;
    const slash = name.lastIndexOf("/");
    const subfolder = slash < 0 ? "" : name.slice(0, slash);
    const filename = slash < 0 ? name : name.slice(slash + 1);
    return api.apiURL(`/view?filename=${encodeURIComponent(filename)}&type=${type}` +
                      `&subfolder=${encodeURIComponent(subfolder)}`);
}

function entryUrl(entry) {
    if (!entry?.filename) return null;
    return api.apiURL(`/view?filename=${encodeURIComponent(entry.filename)}&type=${entry.type ?? "temp"}` +
                      `&subfolder=${encodeURIComponent(entry.subfolder ?? "")}`);
}

function widgetValue(node, name) {
    return node?.widgets?.find((w) => w.name === name)?.value;
}

class LocationCanvas {
    constructor(node) {
        addStyle();
        this.node = node;
        this.text = node.widgets.find((w) => w.name === "locations");
        this.selected = -1;     // index into this.faces
        this.drag = null;
        this.hover = null;
        this.lastRun = null;    // {frame: {width, height, source}, background: url}
        this.images = new Map(); // url -> HTMLImageElement
        this.message = null;    // a transient note in the status line
        this.drawn = "";        // what the canvas shows now (to redraw only on change)
        this.redraws = 0;       // for tests: how many times the picture was drawn

        this.element = document.createElement("div");
        this.element.className = "realisid-locations";
        this.canvas = document.createElement("canvas");
        this.canvas.tabIndex = 0;
        this.canvas.title = "Drag a box to move a face, drag a corner to resize it (Shift: free or keep the shape), " +
            "double-click to add a face; the selected one: Delete removes it, arrow keys nudge it. " +
            "Box k is person k (line k of the text): ◀ / ▶ swap its number with the one before or after.";
        const bar = document.createElement("div");
        bar.className = "bar";
        this.addButton = this.button("+ face", "Add a person's face (the next number)", () => this.addFace());
        this.deleteButton = this.button("delete", "Delete the selected face (the people after it move up by one)",
                                        () => this.deleteSelected());
        this.earlierButton = this.button("◀", "Give the selected face the person number before it (swap the two lines)",
                                         () => this.renumber(-1));
        this.laterButton = this.button("▶", "Give the selected face the person number after it (swap the two lines)",
                                       () => this.renumber(+1));
        this.status = document.createElement("span");
        this.status.className = "status";
        bar.append(this.addButton, this.deleteButton, this.earlierButton, this.laterButton, this.status);
        this.element.append(this.canvas, bar);

        this.widget = node.addDOMWidget(WIDGET_NAME, "realisid_location_canvas", this.element, {
            serialize: false,
            hideOnZoom: true,
            getValue: () => "",
            setValue: () => {},
            getMinHeight: () => 200,
            onDraw: () => this.update(),
        });
        this.widget.serialize = false; // not in widgets_values: the saved workflow keeps the node's own widgets only

        this.listen();
        if (this.text) {
            const callback = this.text.callback;
            const self = this;
            this.text.callback = function (...args) {
                const result = callback?.apply(this, args);
                self.update();
                return result;
            };
        }
        this.update();
    }

    button(label, title, onClick) {
        const b = document.createElement("button");
        b.textContent = label;
        b.title = title;
        b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
        return b;
    }

    listen() {
        const c = this.canvas;
        c.addEventListener("pointerdown", (e) => this.onPointerDown(e));
        c.addEventListener("pointermove", (e) => this.onPointerMove(e));
        c.addEventListener("pointerup", (e) => this.onPointerUp(e));
        c.addEventListener("pointercancel", (e) => this.onPointerUp(e));
        c.addEventListener("pointerleave", () => { if (!this.drag) { this.hover = null; this.update(); } });
        c.addEventListener("dblclick", (e) => this.onDoubleClick(e));
        c.addEventListener("keydown", (e) => this.onKeyDown(e));
        c.addEventListener("contextmenu", (e) => e.stopPropagation());
        // Zoom and pan the graph from over the canvas, as over any other widget.
        c.addEventListener("wheel", (e) => { e.preventDefault(); app.canvas?.processMouseWheel(e); }, { passive: false });
        this.resizeObserver = new ResizeObserver(() => this.update(true));
        this.resizeObserver.observe(c);
    }

    dispose() {
        this.resizeObserver?.disconnect();
    }

    // ---- the picture's frame: size and background -------------------------------------------

    inputOrigin(name) {
        const slot = this.node.inputs?.findIndex((input) => input.name === name) ?? -1;
        if (slot < 0 || this.node.inputs[slot].link == null) return null;
        return this.node.getInputNode(slot) ?? { unknown: true };
    }

    // {width, height, source, background}: the picture as the node will see it.
    frame() {
        const run = this.lastRun;
        const latent = this.inputOrigin("latent");
        const layout = this.inputOrigin("layout_image");
        // width/height are ignored while a latent or a layout picture gives the size: show them greyed.
        for (const w of this.node.widgets ?? []) {
            if (w.name === "width" || w.name === "height") w.disabled = !!(latent || layout);
        }
        let background = null;
        if (layout) {
            const file = layout.comfyClass === "LoadImage" ? widgetValue(layout, "image") : null;
            background = file ? viewUrl(file) : run?.background ?? null;
        }
        if (latent) {
            const w = Number(widgetValue(latent, "width"));
            const h = Number(widgetValue(latent, "height"));
            if (w > 0 && h > 0) {
                // Empty Latent Image and friends: pixels, rounded down to whole latent cells.
                const width = Math.floor(w / LATENT_SCALE) * LATENT_SCALE;
                const height = Math.floor(h / LATENT_SCALE) * LATENT_SCALE;
                return { width, height, source: `latent (${latent.title ?? "latent"})`, background };
            }
            if (run?.frame?.source === "latent") return { ...run.frame, source: "latent (last run)", background };
        } else if (layout) {
            const image = background && this.image(background);
            if (image?.naturalWidth) {
                return { width: image.naturalWidth, height: image.naturalHeight, source: "layout picture", background };
            }
            if (run?.frame?.source === "layout_image") return { ...run.frame, source: "layout picture (last run)", background };
        }
        const width = Number(widgetValue(this.node, "width")) || 512;
        const height = Number(widgetValue(this.node, "height")) || 512;
        const source = latent ? "width/height until a run reads the latent"
            : layout ? "width/height until the layout picture loads" : "width/height";
        return { width, height, source, background };
    }

    image(url) {
        let image = this.images.get(url);
        if (!image) {
            image = new Image();
            image.onload = () => this.update(true);
            image.onerror = () => this.update(true);
            image.src = url;
            this.images.set(url, image);
        }
        return image;
    }

    onExecuted(output) {
        const frame = output?.realisid_frame?.[0];
        if (!frame) return;
        this.lastRun = { frame, background: entryUrl(output?.realisid_background?.[0]) };
        this.update(true);
    }

    // ---- geometry: picture fractions <-> canvas CSS pixels -------------------------------------

    // The frame's rectangle in canvas CSS px, the picture's aspect fitted inside the padding.
    view(frame) {
        const cw = this.canvas.clientWidth;
        const ch = this.canvas.clientHeight;
        const scale = Math.max(0, Math.min((cw - 2 * PAD) / frame.width, (ch - 2 * PAD) / frame.height));
        const w = frame.width * scale;
        const h = frame.height * scale;
        return { x: (cw - w) / 2, y: (ch - h) / 2, w, h };
    }

    boxRect(face, v) {
        return { x: v.x + (face.cx - face.w / 2) * v.w, y: v.y + (face.cy - face.h / 2) * v.h,
                 w: face.w * v.w, h: face.h * v.h };
    }

    // A pointer event's position in canvas CSS px (the element is scaled with the graph's zoom).
    local(e) {
        const r = this.canvas.getBoundingClientRect();
        return { x: ((e.clientX - r.left) * this.canvas.clientWidth) / (r.width || 1),
                 y: ((e.clientY - r.top) * this.canvas.clientHeight) / (r.height || 1) };
    }

    // What is under a point: {index, part: "move" | "nw" | "ne" | "sw" | "se"} or null.
    hit(p) {
        const v = this.state.view;
        // Top-most first (drawn last), the selected face before all others.
        const order = this.faces.map((_, i) => i).filter((i) => !this.faces[i].error).reverse();
        if (order.includes(this.selected)) order.unshift(...order.splice(order.indexOf(this.selected), 1));
        for (const i of order) {
            const r = this.boxRect(this.faces[i], v);
            for (const [part, x, y] of [["nw", r.x, r.y], ["ne", r.x + r.w, r.y],
                                        ["sw", r.x, r.y + r.h], ["se", r.x + r.w, r.y + r.h]]) {
                if (Math.abs(p.x - x) <= HANDLE + 2 && Math.abs(p.y - y) <= HANDLE + 2) return { index: i, part };
            }
        }
        for (const i of order) {
            const r = this.boxRect(this.faces[i], v);
            if (p.x >= r.x && p.x <= r.x + r.w && p.y >= r.y && p.y <= r.y + r.h) return { index: i, part: "move" };
        }
        return null;
    }

    // ---- state and drawing ------------------------------------------------------------------

    // Re-read the text and the frame; redraw if anything the picture shows changed (or `force`).
    update(force = false) {
        const text = String(this.text?.value ?? "");
        const frame = this.frame();
        const parsed = parseLocations(text, frame.width, frame.height);
        this.faces = parsed.faces;
        this.errors = parsed.errors;
        if (this.selected >= this.faces.length) this.selected = this.faces.length - 1;
        const view = this.view(frame);
        this.state = { text, frame, view };
        const key = JSON.stringify([text, frame, view, this.selected, this.hover, this.message,
                                    this.canvas.clientWidth, this.canvas.clientHeight, this.zoom()]);
        if (!force && key === this.drawn) return;
        this.drawn = key;
        this.draw();
        this.showStatus();
    }

    zoom() {
        const r = this.canvas.getBoundingClientRect();
        return this.canvas.clientWidth ? r.width / this.canvas.clientWidth : 1;
    }

    draw() {
        const c = this.canvas;
        const k = (window.devicePixelRatio || 1) * this.zoom();
        const W = Math.max(1, Math.round(c.clientWidth * k));
        const H = Math.max(1, Math.round(c.clientHeight * k));
        if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
        const ctx = c.getContext("2d");
        ctx.setTransform(W / Math.max(1, c.clientWidth), 0, 0, H / Math.max(1, c.clientHeight), 0, 0);
        ctx.clearRect(0, 0, c.clientWidth, c.clientHeight);
        const { frame, view: v } = this.state;

        ctx.fillStyle = "#202020"; // the node's dark frame (realisid_core/signals/previews.py FRAME_GREY)
        ctx.fillRect(v.x, v.y, v.w, v.h);
        const image = frame.background && this.image(frame.background);
        if (image?.complete && image.naturalWidth) {
            ctx.drawImage(image, v.x, v.y, v.w, v.h); // stretched, as the node does
        }
        ctx.strokeStyle = "#666";
        ctx.lineWidth = 1;
        ctx.strokeRect(v.x - 0.5, v.y - 0.5, v.w + 1, v.h + 1);

        ctx.save();
        ctx.beginPath();
        ctx.rect(v.x, v.y, v.w, v.h);
        ctx.clip();
        const font = Math.max(10, Math.min(16, Math.round(Math.min(v.w, v.h) / 16)));
        ctx.font = `bold ${font}px sans-serif`;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        this.faces.forEach((face, i) => {
            if (face.error) return;
            const r = this.boxRect(face, v);
            const colour = personColour(face.person);
            const selected = i === this.selected;
            ctx.globalAlpha = selected ? 0.28 : 0.14;
            ctx.fillStyle = colour;
            ctx.fillRect(r.x, r.y, r.w, r.h);
            ctx.globalAlpha = 1;
            ctx.strokeStyle = colour;
            ctx.lineWidth = selected ? 3 : 2;
            ctx.strokeRect(r.x, r.y, r.w, r.h);
            const label = String(face.person);
            const tw = font * (0.75 * label.length + 0.5);
            const th = font * 1.25;
            const tx = Math.min(Math.max(r.x, v.x), v.x + v.w - tw);
            const ty = Math.min(Math.max(r.y, v.y), v.y + v.h - th);
            ctx.fillRect(tx, ty, tw, th);
            ctx.fillStyle = "#000";
            ctx.fillText(label, tx + tw / 2, ty + th / 2 + 1);
            if (selected || this.hover?.index === i) {
                ctx.fillStyle = "#fff";
                ctx.strokeStyle = colour;
                ctx.lineWidth = 1.5;
                for (const [x, y] of [[r.x, r.y], [r.x + r.w, r.y], [r.x, r.y + r.h], [r.x + r.w, r.y + r.h]]) {
                    ctx.fillRect(x - HANDLE / 2, y - HANDLE / 2, HANDLE, HANDLE);
                    ctx.strokeRect(x - HANDLE / 2, y - HANDLE / 2, HANDLE, HANDLE);
                }
            }
        });
        ctx.restore();
        this.redraws += 1;
    }

    showStatus() {
        const { frame } = this.state;
        const people = this.faces.length;
        this.addButton.disabled = people >= MAX_FACES;
        const selected = this.selected >= 0 && this.selected < people;
        this.deleteButton.disabled = !selected;
        this.earlierButton.disabled = !selected || this.selected === 0;
        this.laterButton.disabled = !selected || this.selected === people - 1;
        const error = this.errors[0];
        let text = this.message ?? (error ? error.message
            : `${people} ${people === 1 ? "person" : "people"} · ${frame.width}×${frame.height} from ${frame.source}`);
        this.status.textContent = text;
        this.status.title = text;
        this.status.classList.toggle("error", !this.message && !!error);
    }

    // ---- edits: every one rewrites the text widget --------------------------------------------

    setText(text) {
        if (!this.text || text === this.text.value) return;
        this.text.value = text; // the widget's setter updates the textarea and calls its callback
        this.node.setDirtyCanvas?.(true, true);
        this.node.graph?.setDirtyCanvas?.(true, true);
        this.update();
    }

    writeFace(index, face) {
        const { text, frame } = this.state;
        this.setText(replaceFace(text, this.faces[index].line, face, frame.width, frame.height));
    }

    addFace(at = null) {
        const { text, frame } = this.state;
        if (this.faces.length >= MAX_FACES) {
            this.flash(`at most ${MAX_FACES} people`);
            return;
        }
        const short = Math.min(frame.width, frame.height);
        const w = (NEW_FACE * short) / frame.width;
        const h = (NEW_FACE * short) / frame.height;
        const spot = at ?? this.freeSpot(w, h);
        const face = { cx: clamp(spot.x, 0, 1), cy: clamp(spot.y, 0, 1), w, h, square: true };
        this.setText(appendFace(text, face, frame.width, frame.height));
        this.selected = this.faces.length - 1;
        this.update(true);
    }

    // The first spot of a 3×3 grid (centre first) that no face covers.
    freeSpot(w, h) {
        const spots = [[0.5, 0.4], [0.25, 0.4], [0.75, 0.4], [0.5, 0.75], [0.25, 0.75], [0.75, 0.75],
                       [0.25, 0.15], [0.5, 0.15], [0.75, 0.15]];
        const boxes = this.faces.filter((f) => !f.error);
        for (const [x, y] of spots) {
            if (boxes.every((f) => Math.abs(f.cx - x) >= (f.w + w) / 2 || Math.abs(f.cy - y) >= (f.h + h) / 2)) {
                return { x, y };
            }
        }
        return { x: 0.5, y: 0.5 };
    }

    deleteSelected() {
        if (this.selected < 0 || this.selected >= this.faces.length) return;
        const line = this.faces[this.selected].line;
        this.selected = -1;
        this.setText(removeLine(this.state.text, line));
    }

    // Person k becomes person k + step and the other one takes k: their two lines swap.
    renumber(step) {
        const i = this.selected;
        const j = i + step;
        if (i < 0 || j < 0 || j >= this.faces.length) return;
        const text = swapLines(this.state.text, this.faces[i].line, this.faces[j].line);
        this.selected = j;
        this.setText(text);
        this.update(true);
    }

    // Move the selected face by (dx, dy), fractions of the picture.
    nudge(dx, dy) {
        const face = this.faces[this.selected];
        if (!face || face.error) return;
        this.writeFace(this.selected, { ...face, cx: clamp(face.cx + dx, 0, 1), cy: clamp(face.cy + dy, 0, 1) });
    }

    flash(message) {
        this.message = message;
        this.update();
        clearTimeout(this.flashTimer);
        this.flashTimer = setTimeout(() => { this.message = null; this.update(); }, 2500);
    }

    // ---- pointer and keys ---------------------------------------------------------------------

    onPointerDown(e) {
        if (e.button === 1) { app.canvas?.processMouseDown(e); return; } // middle button pans the graph
        if (e.button !== 0) return;
        this.update();
        this.canvas.focus({ preventScroll: true });
        const p = this.local(e);
        const hit = this.hit(p);
        this.selected = hit ? hit.index : -1;
        if (hit) {
            const face = this.faces[hit.index];
            this.drag = { ...hit, start: p, face: { ...face }, pointer: e.pointerId };
            this.canvas.setPointerCapture?.(e.pointerId);
        }
        this.update(true);
    }

    onPointerMove(e) {
        if ((e.buttons & 4) === 4) { app.canvas?.processMouseMove(e); return; }
        const p = this.local(e);
        if (!this.drag) {
            const hit = this.hit(p);
            this.hover = hit;
            this.canvas.style.cursor = !hit ? "crosshair" : hit.part === "move" ? "move"
                : hit.part === "nw" || hit.part === "se" ? "nwse-resize" : "nesw-resize";
            this.update();
            return;
        }
        const face = this.dragged(this.drag, p, e.shiftKey);
        this.writeFace(this.drag.index, face);
    }

    onPointerUp(e) {
        if (e.button === 1) { app.canvas?.processMouseUp(e); return; }
        if (!this.drag) return;
        this.canvas.releasePointerCapture?.(this.drag.pointer);
        this.drag = null;
        this.update(true);
    }

    // The face being dragged, for the pointer at `p` (canvas CSS px).
    dragged(drag, p, shift) {
        const { frame, view: v } = this.state;
        const f = drag.face;
        const dx = (p.x - drag.start.x) / v.w;
        const dy = (p.y - drag.start.y) / v.h;
        if (drag.part === "move") {
            return { ...f, cx: clamp(f.cx + dx, 0, 1), cy: clamp(f.cy + dy, 0, 1) };
        }
        // Resize: the opposite corner stays where it is.
        const sx = drag.part.includes("e") ? 1 : -1;
        const sy = drag.part.includes("s") ? 1 : -1;
        const fixedX = f.cx - (sx * f.w) / 2;
        const fixedY = f.cy - (sy * f.h) / 2;
        let w = Math.max(MIN_SIZE, sx * (f.cx + (sx * f.w) / 2 + dx - fixedX));
        let h = Math.max(MIN_SIZE, sy * (f.cy + (sy * f.h) / 2 + dy - fixedY));
        // A square face stays square (Shift frees it); a free face keeps its shape with Shift.
        const keepShape = f.square !== shift;
        if (keepShape) {
            const aspect = (f.w * frame.width) / (f.h * frame.height); // in pixels
            const side = Math.max(w * frame.width, h * frame.height * aspect); // width in pixels
            w = side / frame.width;
            h = side / aspect / frame.height;
        }
        return { cx: fixedX + (sx * w) / 2, cy: fixedY + (sy * h) / 2, w, h, square: f.square && !shift };
    }

    onDoubleClick(e) {
        const p = this.local(e);
        if (this.hit(p)) return;
        const v = this.state.view;
        const x = (p.x - v.x) / v.w;
        const y = (p.y - v.y) / v.h;
        if (x < 0 || x > 1 || y < 0 || y > 1) return;
        this.addFace({ x, y });
    }

    onKeyDown(e) {
        if (e.key === "Delete" || e.key === "Backspace") {
            if (this.selected >= 0) this.deleteSelected();
            e.preventDefault();
            e.stopPropagation();
        } else if (e.key.startsWith("Arrow") && this.selected >= 0) {
            const step = e.shiftKey ? 0.05 : 0.005;
            const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
            this.nudge(dx, dy);
            e.preventDefault();
            e.stopPropagation();
        } else if (e.key === "Escape") {
            this.selected = -1;
            this.update(true);
            e.stopPropagation();
        }
    }
}

function clamp(x, lo, hi) {
    return Math.min(hi, Math.max(lo, x));
}

app.registerExtension({
    name: "RealisID.LocationCanvas",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name !== NODE_TYPE) return;
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function (...args) {
            const result = onNodeCreated?.apply(this, args);
            this.realisidLocations = new LocationCanvas(this);
            const [w, h] = this.size;
            this.setSize([Math.max(w, 320), Math.max(h, 480)]);
            return result;
        };
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (output) {
            const result = onExecuted?.apply(this, [output]);
            this.realisidLocations?.onExecuted(output);
            return result;
        };
        const onConnectionsChange = nodeType.prototype.onConnectionsChange;
        nodeType.prototype.onConnectionsChange = function (...args) {
            const result = onConnectionsChange?.apply(this, args);
            this.realisidLocations?.update();
            return result;
        };
        const onRemoved = nodeType.prototype.onRemoved;
        nodeType.prototype.onRemoved = function (...args) {
            this.realisidLocations?.dispose();
            return onRemoved?.apply(this, args);
        };
        // The canvas is this node's preview (the same boxes over the same picture, live): do not
        // also draw the run's preview image under it, as ComfyUI does for nodes that return images.
        nodeType.prototype.onDrawBackground = function () {};
    },
});

export { LocationCanvas, formatFace };
