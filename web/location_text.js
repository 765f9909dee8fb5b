// The `locations` text of RealisID Location Guidance, read and edited line by line.
//
// The text is the source of truth: one face per line, line k = person k, `cx cy size` (a square
// face, size as a fraction of the picture's shorter side) or `cx cy w h` (fractions of the
// picture's width and height); commas or spaces separate numbers, `#` starts a note. This module
// reads it the way realisid_core/people/locations.py `parse_locations` does, and rewrites only the line
// of the face that changed, keeping every other line, note and blank line as the artist wrote it.
// No ComfyUI imports here: the canvas (location_canvas.js) and the tests use these functions.

export const MAX_FACES = 8;
// Person k is drawn in PERSON_COLOURS[k - 1]; realisid_core/signals/previews.py holds the same list.
export const PERSON_COLOURS = ["#ff5a5a", "#4fc3f7", "#ffd54f", "#81c784", "#ba68c8", "#ff8a65", "#4db6ac", "#f06292"];
export const DECIMALS = 3;

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function personColour(person) {
    return PERSON_COLOURS[(person - 1) % PERSON_COLOURS.length];
}

export function splitLines(text) {
    return String(text ?? "").split(/\r\n|\r|\n/);
}

// One line's parts: the numbers' text, the note (from '#', with the spaces before it), commas or not.
function lineParts(raw) {
    const hash = raw.indexOf("#");
    const body = hash < 0 ? raw : raw.slice(0, hash);
    const note = hash < 0 ? "" : raw.slice(body.trimEnd().length);
    return { body, note, commas: body.includes(",") };
}

// Read the text for a picture `width`×`height` (pixels). Returns
//   faces:  [{person, line, cx, cy, w, h, square, error}] in person order; a face whose line has
//           an error keeps its person number (the next line is still the next person) but no box;
//   errors: [{person, line, message}] worded as the node's own errors.
export function parseLocations(text, width, height) {
    const short = Math.min(width, height);
    const faces = [];
    const errors = [];
    splitLines(text).forEach((raw, line) => {
        const body = lineParts(raw).body.replace(/,/g, " ").trim();
        if (!body) return;
        const person = faces.length + 1;
        const face = { person, line, cx: NaN, cy: NaN, w: NaN, h: NaN, square: false, error: null };
        faces.push(face);
        const words = body.split(/\s+/);
        const fail = (message) => {
            face.error = message;
            errors.push({ person, line, message });
        };
        if (!words.every((word) => NUMBER.test(word))) {
            return fail(`line ${line + 1} ('${raw.trim()}') is not a list of numbers: write 'x y size' or 'x y width height'`);
        }
        const values = words.map(Number);
        if (values.length === 3) {
            const [cx, cy, size] = values;
            Object.assign(face, { cx, cy, w: (size * short) / width, h: (size * short) / height, square: true });
        } else if (values.length === 4) {
            const [cx, cy, w, h] = values;
            Object.assign(face, { cx, cy, w, h });
        } else {
            return fail(`line ${line + 1} ('${raw.trim()}') has ${values.length} numbers: write 3 (x y size) or 4 (x y width height)`);
        }
        if (![face.cx, face.cy, face.w, face.h].every(Number.isFinite)) {
            return fail(`face ${person} has a value that is not a number`);
        }
        if (face.w <= 0 || face.h <= 0) {
            return fail(`face ${person} has zero or negative size`);
        }
        if (face.cx + face.w / 2 <= 0 || face.cx - face.w / 2 >= 1 || face.cy + face.h / 2 <= 0 || face.cy - face.h / 2 >= 1) {
            return fail(`face ${person} lies entirely outside the picture: keep its centre within 0-1`);
        }
    });
    if (faces.length > MAX_FACES) {
        errors.push({ person: MAX_FACES + 1, line: faces[MAX_FACES].line,
                      message: `${faces.length} faces were given, at most ${MAX_FACES} are supported` });
    }
    if (faces.length === 0) {
        errors.push({ person: 0, line: -1, message: "no face locations: add a face (double-click the picture)" });
    }
    return { faces, errors };
}

// A number with at most DECIMALS decimals and no trailing zeros: 0.5, 0.125, 1.
export function formatNumber(value) {
    const fixed = Number(value).toFixed(DECIMALS);
    const trimmed = fixed.includes(".") ? fixed.replace(/0+$/, "").replace(/\.$/, "") : fixed;
    return trimmed === "-0" ? "0" : trimmed;
}

// The text of a face: `cx cy size` when `square` (size = the side as a fraction of the shorter
// side of the picture), else `cx cy w h`.
export function formatFace(face, width, height, { commas = false } = {}) {
    const short = Math.min(width, height);
    const values = face.square
        ? [face.cx, face.cy, (face.w * width) / short]
        : [face.cx, face.cy, face.w, face.h];
    return values.map(formatNumber).join(commas ? ", " : " ");
}

// The text with face line `line` rewritten to `face`, keeping the line's note and separator style.
export function replaceFace(text, line, face, width, height) {
    const lines = splitLines(text);
    const { body, note, commas } = lineParts(lines[line] ?? "");
    const indent = body.match(/^\s*/)[0];
    lines[line] = indent + formatFace(face, width, height, { commas }) + note;
    return lines.join("\n");
}

// The text with a new face as the last person.
export function appendFace(text, face, width, height) {
    const line = formatFace(face, width, height);
    const lines = splitLines(text);
    while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
    lines.push(line);
    return lines.join("\n");
}

// The text without line `line` (the people after it move up by one).
export function removeLine(text, line) {
    const lines = splitLines(text);
    lines.splice(line, 1);
    return lines.join("\n");
}

// The text with lines `a` and `b` swapped (two people trade numbers).
export function swapLines(text, a, b) {
    const lines = splitLines(text);
    [lines[a], lines[b]] = [lines[b], lines[a]];
    return lines.join("\n");
}
