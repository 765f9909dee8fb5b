"""The developer tools (tools/, benchmarks/) stand on their own: they import nothing from tests/, so the
tests can change without breaking them (the tests import the tools' host loader and fake packs instead)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_ONLY = {"tests", "fixtures", "conftest", "batch_servers", "train_helpers"}


def imported_top_names(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module.split(".")[0]


def test_tools_and_benchmarks_import_nothing_from_tests():
    found = [f"{path.relative_to(REPO)}:{line} imports {name}"
             for folder in ("tools", "benchmarks") for path in sorted((REPO / folder).rglob("*.py"))
             for line, name in imported_top_names(path) if name in TEST_ONLY]
    assert not found, "developer tools must not import the tests:\n" + "\n".join(found)


def test_tools_and_benchmarks_put_no_test_folder_on_sys_path():
    found = [str(path.relative_to(REPO)) for folder in ("tools", "benchmarks")
             for path in sorted((REPO / folder).rglob("*.py")) if '"tests"' in path.read_text()]
    assert not found, f"developer tools must not put tests/ on sys.path: {found}"
