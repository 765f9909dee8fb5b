"""ComfyUI's two workflow formats: the UI (LiteGraph) graph and the API prompt, and conversion between them.

Both directions read node definitions in the shape of ComfyUI's `/object_info` (or
`object_info_from_classes` for V1 node classes in-process): which inputs are widgets, in which
order, and what each node outputs.
"""
from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# frontend-only nodes: they live in the UI file and never reach the API prompt
VIRTUAL_NODES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}


def object_info_from_classes(classes: dict) -> dict:
    """`/object_info`-shaped definitions of V1 node classes ({node id: class})."""
    info = {}
    for name, cls in classes.items():
        inputs = cls.INPUT_TYPES()
        info[name] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items() if k in ("required", "optional")},
                      "output": list(cls.RETURN_TYPES),
                      "output_name": list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)}
    return info


def _inputs(definition: dict):
    """(name, spec) of every input in ComfyUI's order: required, then optional."""
    for section in ("required", "optional"):
        specs = definition["input"].get(section, {})
        for name in definition.get("input_order", {}).get(section, list(specs)):
            yield name, specs[name]


def _is_widget(spec) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 else {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def _extra_widget_values(spec) -> list:
    """Values the UI stores after a widget that have no API input (seed control, upload button)."""
    options = spec[1] if len(spec) > 1 else {}
    if options.get("control_after_generate"):
        return ["fixed"]
    if options.get("image_upload"):
        return ["image"]
    return []


def _depths(api: dict) -> dict:
    depth = {}

    def visit(node_id):
        if node_id not in depth:
            links = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((visit(l) for l in links), default=-1)
        return depth[node_id]
    for node_id in api:
        visit(node_id)
    return depth


def api_to_ui(api: dict, object_info: dict, layout: dict | None = None, groups: list | None = None,
              notes: list | None = None, models: dict | None = None) -> dict:
    """A UI-format workflow (version 0.4) of an API-format prompt: nodes where `layout` puts them
    (else in columns by depth), with `groups`, `notes` (Note nodes) and per-node `models` (the files
    ComfyUI's missing-model dialog lists)."""
    layout, models = layout or {}, models or {}
    depth = _depths(api)
    order = sorted(api, key=lambda n: (depth[n], int(n)))
    rows: dict[int, int] = {}
    nodes, links = [], []
    outgoing: dict[tuple[str, int], list[int]] = {}
    for node_id in order:
        for name, value in api[node_id]["inputs"].items():
            if isinstance(value, list):
                links.append([len(links) + 1, int(value[0]), value[1], int(node_id), name])
                outgoing.setdefault((value[0], value[1]), []).append(len(links))
    for index, node_id in enumerate(order):
        node = api[node_id]
        definition = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec in _inputs(definition):
            value = node["inputs"].get(name)
            if _is_widget(spec) and not isinstance(value, list):
                if name in node["inputs"]:
                    widgets += [value] + _extra_widget_values(spec)
                continue
            link = next((l[0] for l in links if l[3] == int(node_id) and l[4] == name), None)
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            inputs.append({"name": name, "type": kind, "link": link})
        outputs = [{"name": out_name, "type": out_type, "links": outgoing.get((node_id, slot), []), "slot_index": slot}
                   for slot, (out_type, out_name) in enumerate(zip(definition["output"], definition["output_name"]))]
        column = depth[node_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        placed = layout.get(node_id) or {}
        size = placed.get("size") or [320, 80 + 26 * len(widgets) + 22 * max(len(inputs), len(outputs))]
        entry = {"id": int(node_id), "type": node["class_type"],
                 "pos": placed.get("pos") or [40 + 360 * column, 40 + 260 * row], "size": size, "flags": {},
                 "order": index, "mode": 0, "inputs": inputs, "outputs": outputs,
                 "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets}
        if node_id in models:
            entry["properties"]["models"] = models[node_id]
        if "_meta" in node:
            entry["title"] = node["_meta"]["title"]
        nodes.append(entry)
    last_id = max(int(n) for n in api)
    for i, note in enumerate(notes or [], 1):
        nodes.append({"id": last_id + i, "type": "MarkdownNote", "pos": note["pos"], "size": note["size"], "flags": {},
                      "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [note["text"]], "color": "#432", "bgcolor": "#653"})
    ui_links = []
    for link_id, from_id, from_slot, to_id, to_name in links:
        to_node = next(n for n in nodes if n["id"] == to_id)
        to_slot = next(i for i, inp in enumerate(to_node["inputs"]) if inp["name"] == to_name)
        from_node = next(n for n in nodes if n["id"] == from_id)
        ui_links.append([link_id, from_id, from_slot, to_id, to_slot, from_node["outputs"][from_slot]["type"]])
    ui_groups = [{"id": i, "title": g["title"], "bounding": g["bounding"], "color": g["color"], "font_size": 24,
                  "flags": {}} for i, g in enumerate(groups or [], 1)]
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(ui_links), "nodes": nodes,
            "links": ui_links, "groups": ui_groups, "config": {}, "extra": {}, "version": 0.4}


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """The API prompt of a UI-format workflow (what the frontend queues), widgets read by node definitions."""
    sources = {link[0]: (str(link[1]), link[2]) for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) != 0 or node["type"] in VIRTUAL_NODES:
            continue
        definition = object_info[node["type"]]
        values = list(node.get("widgets_values", []))
        linked = {inp["name"]: inp["link"] for inp in node.get("inputs", [])}
        inputs = {}
        for name, spec in _inputs(definition):
            if linked.get(name) is not None:
                inputs[name] = list(sources[linked[name]])
            elif _is_widget(spec) and name not in linked and values:
                inputs[name] = values.pop(0)
                for _ in _extra_widget_values(spec):
                    values.pop(0)
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
        if "title" in node:
            api[str(node["id"])]["_meta"] = {"title": node["title"]}
    return api
