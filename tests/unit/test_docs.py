"""The documentation cannot drift from the code: every relative link and anchor in README.md and docs/*.md
resolves, every node the pack registers is in the README's overview, and every command the docs show
(fenced or inline `python -m ...`, `pip install -r ...`) names a module, sub-command, flag or file that
exists. Failures name the doc line to fix."""
from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The command lines of the repository's tools: the module a doc runs with `python -m`, and the function
# that builds and parses its arguments (called with the parser captured, so nothing runs).
CLIS = {"realisid_train": "realisid_train.__main__:main", "realisid_batch": "realisid_batch.cli:main",
        "benchmarks": "benchmarks.__main__:main", "benchmarks.instantid": "benchmarks.instantid:main",
        "benchmarks.infiniteyou": "benchmarks.infiniteyou:main"}
# Modules run with no arguments of their own (their options, if any, are checked by CLIS instead).
PLAIN_MODULES = {"tools.make_workflows", "pytest", "venv", "pip"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Line:
    doc: Path
    number: int
    text: str
    fenced: bool

    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.number}"


def doc_lines(doc: Path):
    """Every line of a doc with whether it sits in a ``` fence; a fenced line ending in a backslash is
    joined with the next (reported at its first line)."""
    fenced, pending = False, None
    for number, text in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if text.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if pending is not None:
            pending = Line(doc, pending.number, pending.text.rstrip("\\ ") + " " + text.strip(), True)
        else:
            pending = Line(doc, number, text, fenced)
        if fenced and text.rstrip().endswith("\\"):
            continue
        yield pending
        pending = None


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: markdown marks dropped, lower case, punctuation removed, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors_of(doc: Path) -> set[str]:
    found, seen = set(), {}
    for line in doc_lines(doc):
        if not line.fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line.text)):
            anchor = github_anchor(m.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if not count else f"{anchor}-{count}")
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line.text))
    return found


def link_problems():
    for doc in DOCS:
        for line in doc_lines(doc):
            if line.fenced:
                continue
            prose = INLINE_CODE.sub("", line.text)
            for m in LINK.finditer(prose):
                target = m.group(1) or m.group(2)
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked offline
                    continue
                path, _, anchor = target.partition("#")
                file = (REPO / path.lstrip("/")) if path.startswith("/") else (doc.parent / path) if path else doc
                if not file.exists():
                    yield f"{line.where()}: link to '{target}': no file {file.relative_to(REPO) if file.is_relative_to(REPO) else file}"
                elif anchor and file.suffix == ".md" and anchor not in anchors_of(file):
                    yield (f"{line.where()}: link to '{target}': {file.relative_to(REPO)} has no heading with "
                           f"anchor '#{anchor}'")


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    problems = list(link_problems())
    assert not problems, "broken links (fix the link or the heading):\n" + "\n".join(problems)


def test_the_anchor_rule_is_githubs():
    assert github_anchor("RealisID Load InstantID Adapter (`RealisID_InstantIDLoader`, RealisID/loaders)") == \
        "realisid-load-instantid-adapter-realisid_instantidloader-realisidloaders"
    assert github_anchor("Memory and time per step — ESTIMATED, not measured") == \
        "memory-and-time-per-step--estimated-not-measured"


def registered_node_ids() -> set[str]:
    """The keys of every NODE_CLASS_MAPPINGS literal in nodes/ (read, not imported: no host needed)."""
    ids = set()
    for path in (REPO / "nodes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NODE_CLASS_MAPPINGS" for t in node.targets)
                    and isinstance(node.value, ast.Dict)):
                ids.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    return ids


def test_the_readme_lists_every_node():
    ids = registered_node_ids()
    assert len(ids) >= 18
    readme = (REPO / "README.md").read_text()
    missing = sorted(i for i in ids if not re.search(rf"\b{re.escape(i)}\b", readme))
    assert not missing, f"README.md's node overview lacks {missing}: add a row for each"


# ---- commands -------------------------------------------------------------------------------------------

def commands():
    """(Line, argv) of every command the docs show: fenced lines and inline code that start with
    python / pip / .ci; comments, `&&` chains and `[optional]` brackets handled."""
    for doc in DOCS:
        for line in doc_lines(doc):
            pieces = [line.text] if line.fenced else INLINE_CODE.findall(line.text)
            for piece in pieces:
                piece = re.sub(r"\s#(\s.*)?$", "", piece.strip())
                for command in piece.split("&&"):
                    try:
                        argv = shlex.split(command)
                    except ValueError:
                        argv = command.split()
                    argv = [word for word in argv if word.strip("[]") not in ("…", "...")]  # "and so on"
                    while argv and re.match(r"[A-Z_][A-Z0-9_]*=", argv[0]):  # VAR=value prefixes
                        argv = argv[1:]
                    if argv and re.search(r"(^|/)(python3?(\.exe)?|pip3?|run)$", argv[0]) and \
                            (not argv[0].endswith("run") or argv[0].endswith(".ci/run")):
                        yield line, argv


def captured_parser(target: str) -> argparse.ArgumentParser:
    """The parser a CLI's main() builds, caught when it starts parsing (so the command never runs)."""
    class Captured(Exception):
        pass

    module, function = target.split(":")
    main = getattr(importlib.import_module(module), function)
    originals = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise Captured(self)
    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = capture
    try:
        main([])
    except Captured as caught:
        return caught.args[0]
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = originals
    raise AssertionError(f"{target} never parsed its arguments")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def cli_problems(where: str, module: str, args: list[str]):
    parser = captured_parser(CLIS[module])
    subs = subcommands(parser)
    options = set(parser._option_string_actions)
    words = [a.strip("[]") for a in args if a.strip("[]")]
    words = [part for w in words for part in (re.split(r"[/|]", w) if w.startswith("-") else [w]) if part]
    first = next((w for w in words if not w.startswith("-")), None)
    if subs and first is not None:  # a bare `python -m tool` in prose names the tool, not a command
        if first not in subs:
            yield f"{where}: `python -m {module} {first}`: no such sub-command (it has {sorted(subs)})"
            return
        options |= set(subs[first]._option_string_actions)
    for word in words:
        flag = word.split("=", 1)[0]
        if re.match(r"--?[A-Za-z]", flag) and flag not in options:
            yield f"{where}: `python -m {module}` does not accept {flag} (it accepts {sorted(options)})"


def repo_file(name: str) -> Path:
    """A path as the docs write it, from the repository root or from custom_nodes/ (ComfyUI-RealisID/...)."""
    return REPO / re.sub(r"^(\./)?ComfyUI-RealisID/", "", name)


def command_problems(line: Line, argv: list[str]):
    where = line.where()
    if argv[0].endswith(".ci/run"):
        if not (REPO / ".ci" / "run").is_file():
            yield f"{where}: .ci/run does not exist"
        return
    args = argv[1:]
    if re.search(r"pip3?$", argv[0]):
        args = ["-m", "pip", *args]
    if not args or args[0] != "-m":
        return  # python some_script.py: not a form the docs use for the pack's tools
    module, rest = args[1], args[2:]
    if module == "pip":
        for i, word in enumerate(rest):
            if word in ("-r", "--requirement", "-c", "--constraint") and i + 1 < len(rest):
                if not repo_file(rest[i + 1]).is_file():
                    yield f"{where}: `pip install {word} {rest[i + 1]}`: no such file in the repository"
        return
    if module in CLIS:
        yield from cli_problems(where, module, rest)
    elif module in PLAIN_MODULES:
        if module == "tools.make_workflows" and rest:
            yield f"{where}: `python -m tools.make_workflows` takes no arguments, got {rest}"
        if module == "pytest":
            for word in rest:
                if not word.startswith("-") and not repo_file(word.split("::")[0]).exists():
                    yield f"{where}: `python -m pytest {word}`: no such test path"
        elif importlib.util.find_spec(module) is None:
            yield f"{where}: `python -m {module}`: no such module"
    else:
        yield (f"{where}: `python -m {module}` is not a command the doc tests know: fix the doc, or add the "
               "module to CLIS / PLAIN_MODULES in tests/unit/test_docs.py so its flags are checked")


def test_the_docs_show_commands():
    shown = {argv[2] if argv[1:2] == ["-m"] else argv[0] for _, argv in commands() if len(argv) > 2}
    assert {"realisid_train", "realisid_batch", "benchmarks", "pytest"} <= shown


def test_every_command_in_the_docs_exists_with_its_flags():
    problems = [p for line, argv in commands() for p in command_problems(line, argv)]
    assert not problems, "commands in the docs that the code does not have:\n" + "\n".join(problems)


def test_a_wrong_flag_or_sub_command_is_named_with_its_doc_line():
    line = Line(REPO / "docs" / "training.md", 7, "", True)
    assert list(command_problems(line, ["python", "-m", "realisid_train", "train", "--config", "x.toml"])) == []
    wrong_flag = list(command_problems(line, ["python", "-m", "realisid_train", "train", "--no-such-flag"]))
    assert len(wrong_flag) == 1 and "docs/training.md:7" in wrong_flag[0] and "--no-such-flag" in wrong_flag[0]
    wrong_sub = list(command_problems(line, ["python", "-m", "realisid_batch", "launch"]))
    assert len(wrong_sub) == 1 and "launch" in wrong_sub[0]
    assert list(command_problems(line, ["pip", "install", "-r", "ComfyUI-RealisID/requirements-nope.txt"]))
    assert list(command_problems(line, ["python", "-m", "realisid_nothing"]))


@pytest.mark.parametrize("module", sorted(CLIS))
def test_each_cli_parser_can_be_read_without_running_it(module):
    assert isinstance(captured_parser(CLIS[module]), argparse.ArgumentParser)
