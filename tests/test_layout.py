"""tests/ mirrors src/: a test of src/facedouble/<package>/ is tests/<package>/test_<package>_*.py, a test of a
top-level module or several stages is in tests/ itself (the cross-cutting reliability suites in
tests/reliability/); shared helpers are in tests/support/ and shared fixtures in conftest.py, so no test module
(and no benchmark) imports another test module."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGES = {p.name for p in (ROOT / "src" / "facedouble").iterdir() if (p / "__init__.py").is_file()}
FOLDERS = PACKAGES | {"reliability"}
NOT_TESTS = {"support", "data", "__pycache__"}


def _test_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "support" not in p.relative_to(TESTS).parts)


def _home(name: str) -> str:
    """The folder (relative to tests/) where test module `name` belongs: its first word after test_."""
    word = name.removeprefix("test_").removesuffix(".py").split("_")[0]
    return word if word in FOLDERS else "."


def test_every_test_module_is_in_the_folder_of_what_it_tests():
    modules = _test_modules()
    assert len(modules) > 50                    # the walk found the suite (a wrong root would pass vacuously)
    wrong = [f"{p.relative_to(TESTS)} (belongs in tests/{_home(p.name)})" for p in modules
             if p.parent.relative_to(TESTS).as_posix() != _home(p.name)]
    assert wrong == [], "move these: " + ", ".join(wrong)
    names = [p.name for p in modules]
    assert len(names) == len(set(names)), "test module names must be unique (pytest imports them by name)"


def test_test_folders_mirror_src_packages():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name not in NOT_TESTS}
    assert folders <= FOLDERS, f"tests/ folders without a src/facedouble package: {sorted(folders - FOLDERS)}"
    for f in folders:                           # a folder holds tests (not only a conftest)
        assert any((TESTS / f).glob("test_*.py")), f"tests/{f}/ holds no test module"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def test_no_test_module_imports_another():
    files = _test_modules() + sorted(TESTS.rglob("conftest.py")) + sorted((TESTS / "support").glob("*.py")) \
        + sorted((ROOT / "benchmarks").glob("*.py"))
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p in files for line, mod in _imported_modules(p)
           if mod.split(".")[0].startswith("test_")]
    assert bad == [], "import helpers from tests/support/ and use fixtures from conftest.py: " + "; ".join(bad)


def test_the_check_sees_a_misplaced_module_and_a_test_import(tmp_path):
    assert _home("test_merge_blend.py") == "merge" and _home("test_pipeline.py") == "."
    assert _home("test_reliability_kills.py") == "reliability" and _home("test_inference.py") == "."
    bad = tmp_path / "test_x.py"
    bad.write_text("import os\nfrom test_web_api import make_client\n\ndef f():\n    import test_live\n")
    assert [m for _, m in _imported_modules(bad) if m.startswith("test_")] == ["test_web_api", "test_live"]
