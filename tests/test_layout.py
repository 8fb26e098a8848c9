"""The package's two layers: the reproduction library never imports the book layer (nor names its
pages), the probes know nothing of scales, every notebook has its chapter module, and every chapter
shows the function behind its figure from source."""

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
    for match in shown:  # the file and the object the page includes exist (else the page shows nothing)
        file = ROOT / match["file"]
        module = importlib.import_module(".".join(Path(match["file"]).with_suffix("").parts))
        target = module
        for part in match["object"].split("."):
            target = getattr(target, part)
        assert file.exists() and target.__doc__, match.group(0)


def test_the_core_names_no_page():
    # pointers go one way: a page may say where a function is defined, the core never names a page
    for path in CORE:
        assert "notebooks/" not in path.read_text(), f"{path.relative_to(ROOT)} names a page of the book"


def test_every_notebook_has_its_chapter_module_and_back():
    import importlib

    from bnlib.book.contents import CHAPTERS as BOOK
    from bnlib.book.contents import chapter

    assert [chapter(page.stem).notebook for page in CHAPTERS] == [page.stem for page in CHAPTERS]
    assert [c.notebook for c in BOOK] == [page.stem for page in CHAPTERS]  # the contents, in the pages' order
    for page in CHAPTERS:  # notebooks/NN_x is chapters/chNN_x, and its CHAPTER names that notebook
        module = importlib.import_module(f"bnlib.book.chapters.ch{page.stem}")
        assert module.CHAPTER is chapter(page.stem)


def test_no_chapter_imports_another_and_the_book_layer_has_no_import_circle():
    book = PACKAGE / "book"
    modules = {f"bnlib.book.{p.relative_to(book).with_suffix('').as_posix().replace('/', '.')}": p
               for p in book.rglob("*.py") if p.name != "__init__.py"}  # fmt: skip
    edges = {name: {m for m in imported_modules(path) if m in modules} for name, path in modules.items()}
    for name, imports in edges.items():
        if ".chapters." in name:
            assert not {m for m in imports if ".chapters." in m}, f"{name} imports another chapter"

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(m == goal or (m not in seen and reaches(m, goal, seen | {m})) for m in edges[start])

    assert not [name for name in modules if reaches(name, name, set())], "a circle of imports in bnlib/book"


def test_the_core_and_the_config_import_in_one_direction():
    # norms is the registry the config checks a normalization against: it must not import the config
    assert not {m for m in imported_modules(PACKAGE / "norms.py") if m.startswith("bnlib.config")}
    # and no core module takes a name from the package's __init__ (only its submodules): no import upward
    for path in CORE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "bnlib":
                for alias in node.names:
                    submodule = (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()
                    assert submodule, f"{path.relative_to(ROOT)} imports {alias.name} from bnlib's __init__"


def test_no_reference_to_documents_outside_the_repository():
    outside = re.compile(r"protocol \d|docs/scales")
    for path in [*PACKAGE.rglob("*.py"), *CHAPTERS, *(ROOT / "book").glob("*.*"), ROOT / "README.md"]:
        if path.suffix in {".py", ".ipynb", ".md"}:
            assert not outside.search(path.read_text()), path
