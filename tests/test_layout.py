"""The package's two layers: the reproduction library never imports the book layer, the probes know
nothing of scales, every chapter shows the function behind its figure from source, and the README's
layout table names every module."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bnlib"
CORE = sorted(p for p in PACKAGE.rglob("*.py") if "book" not in p.relative_to(PACKAGE).parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_core_never_imports_the_book_layer(path):
    book = {m for m in imported_modules(path) if m == "bnlib.book" or m.startswith("bnlib.book.")}
    assert not book, f"{path.relative_to(ROOT)} imports {sorted(book)}"


def test_the_core_runs_without_loading_the_book_layer():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in CORE if p.name != "__main__.py"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.__init__'))\n"
        "from bnlib.cli import main\n"
        "main(['list', '--scale', 'smoke'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('bnlib.book') or m.split('.')[0] in "
        "('matplotlib', 'seaborn', 'ipywidgets'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("path", sorted((PACKAGE / "probes").glob("*.py")), ids=lambda p: p.name)
def test_the_probes_know_nothing_of_scales(path):
    assert "bnlib.experiments" not in imported_modules(path)
    constants = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
    assert not constants & {"smoke", "cpu", "paper"}, "a probe names a scale"


CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
INCLUDE = re.compile(r"```\{literalinclude\} \.\./(?P<file>\S+)\n:pyobject: (?P<object>\S+)")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_shows_the_science_from_source(chapter):
    sources = "\n".join(c.source for c in nbformat.read(chapter, as_version=4).cells if c.cell_type == "markdown")
    shown = list(INCLUDE.finditer(sources))
    assert shown, f"{chapter.name} shows no library function from source"
    for match in shown:
        file = ROOT / match["file"]
        module = importlib.import_module(".".join(Path(match["file"]).with_suffix("").parts))
        target = module
        for part in match["object"].split("."):
            target = getattr(target, part)
        assert file.exists() and target.__doc__, match.group(0)
        docstring = " ".join(target.__doc__.split())
        assert chapter.name in docstring, f"{match['object']}'s docstring must name {chapter.name}"


def test_the_readme_layout_table_names_every_module():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout") :]
    table = table[: table.index("\n## ", 3)]
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        folder = path.parent.relative_to(ROOT).as_posix() + "/"
        named = f"`{relative}`" in table or (path.name in ("__init__.py", "__main__.py") and f"`{folder}`" in table)
        listed_in_folder = f"`{folder}`" in table and f"`{path.stem}`" in table
        assert named or listed_in_folder, f"README's layout table does not mention {relative}"


def test_no_reference_to_documents_outside_the_repository():
    outside = re.compile(r"protocol \d|docs/scales")
    for path in [*PACKAGE.rglob("*.py"), *CHAPTERS, *(ROOT / "book").glob("*.*"), ROOT / "README.md"]:
        if path.suffix in {".py", ".ipynb", ".md"}:
            assert not outside.search(path.read_text()), path
