"""The book: chapters follow the template; the smoke-scale book builds; a real headless Chromium
loads every page and finds what a reader should see. (The chapters executed with Colab's
ipywidgets 7: test_colab_pages.py.)"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import claims_not_shown, run_cli

from bnlib.book import build, contents, template
from bnlib.book.chapter import forget
from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.contents import CHAPTERS as BOOK
from bnlib.book.contents import chapter
from bnlib.book.project import REPO_URL
from bnlib.book.template import ENV_FINDINGS
from bnlib.errors import BnlibError

ROOT = template.ROOT
CHAPTERS = sorted(template.NOTEBOOKS.glob("*.ipynb"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_every_chapter_is_in_the_book():
    assert CHAPTERS, "notebooks/ holds no chapter"
    assert set(CHAPTERS) <= set(build.toc_notebooks()), "a chapter is missing from book/_toc.yml"


class _MissedWakeUp:
    """A kernel channel whose message is waiting but whose long waits never notice it: only a
    short poll (<= 1 s) after the second call returns it (or never, if `message` is None)."""

    def __init__(self, message: dict | None):
        self.message, self.calls = message, []

    async def get_msg(self, timeout=None):
        from queue import Empty

        self.calls.append(timeout)
        if self.message is None or timeout is None or timeout > 1.0 or len(self.calls) < 3:
            raise Empty
        return self.message


def test_patient_channel_finds_a_message_a_long_wait_misses():
    import asyncio

    channel = _MissedWakeUp({"msg_type": "execute_reply"})
    build._poll_every_second(channel)
    assert asyncio.run(channel.get_msg(timeout=600)) == {"msg_type": "execute_reply"}
    assert all(t <= 1.0 for t in channel.calls)


def test_patient_channel_still_times_out():
    import asyncio
    from queue import Empty

    channel = _MissedWakeUp(None)
    build._poll_every_second(channel)
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.05))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_template(notebook):
    assert template.template_problems(notebook) == []


def test_apply_template_repairs_a_chapter(tmp_path, monkeypatch):
    monkeypatch.setattr(template, "ROOT", tmp_path)
    chapter = tmp_path / "notebooks" / "ch.ipynb"
    chapter.parent.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# A chapter"),
            nbformat.v4.new_code_cell("1 + 1"),
            nbformat.v4.new_markdown_cell("Does it help?"),
        ]
    )
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nbformat.write(nb, chapter)
    with pytest.raises(BnlibError, match="the page's opening"):  # a page opens with its question, not code
        template.apply_template(chapter)
    nb.cells = [nb.cells[0], nb.cells[2], nb.cells[1]]
    nbformat.write(nb, chapter)
    assert template.template_problems(chapter)
    template.apply_template(chapter)
    assert template.template_problems(chapter) == []
    cells = nbformat.read(chapter, as_version=4).cells
    assert cells[1].source == "Does it help?"  # the opening, before the set-up cells
    assert [c.source for c in cells][-2] == "1 + 1" and cells[-2].outputs == []
    assert cells[-1].source == template.EVIDENCE_CELL  # every page ends saying where its evidence came from
    template.apply_template(chapter)  # idempotent
    assert len(nbformat.read(chapter, as_version=4).cells) == 7  # title, opening, 3 head cells, cell, evidence


def test_the_repository_address_is_defined_once():
    pattern = REPO_URL.removeprefix("https://")
    holders = [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".yml", ".yaml", ".md", ".toml", ".ipynb"}
        and not {".venv", "_build", ".git"} & set(p.relative_to(ROOT).parts)
        and pattern in p.read_text(errors="ignore")
    ]
    generated = {p.relative_to(ROOT).as_posix() for p in template.pages()}  # written by apply_template
    assert set(holders) - generated == {"bnlib/book/project.py"}


# ------------------------------------------------------------------ the smoke-scale book in a browser


@pytest.fixture(scope="module")
def smoke_site(book_env: dict[str, str]) -> Path:
    """Build the smoke-scale book once (fake data, the module's run cache, an empty execution
    cache) and return its html folder."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BNLIB_CACHE", book_env["BNLIB_CACHE"])
        env.setenv("BNLIB_STORE", book_env["BNLIB_STORE"])
        # relative to the directory the build is started from, as a reader would write it
        env.setenv("BNLIB_DATA", os.path.relpath(book_env["BNLIB_DATA"]))
        shutil.rmtree(ROOT / "book" / "_build" / "smoke", ignore_errors=True)
        index = build.build("smoke", rebuild_all=True, findings=Path(book_env[ENV_FINDINGS]))
    assert index.parent == ROOT / "book" / "_build" / "smoke" / "_build" / "html"  # never the published build
    return index.parent


def test_smoke_book_builds(smoke_site):
    pages = {p.relative_to(smoke_site).as_posix() for p in smoke_site.rglob("*.html")}
    assert {"book/intro.html", "book/results.html", "book/scales.html", "book/bibliography.html"} <= pages
    assert {f"notebooks/{c.stem}.html" for c in CHAPTERS} <= pages
    assert (smoke_site / "vendor" / "html-manager" / "embed-amd.js").exists()
    assert not list(smoke_site.glob("_static/**/embed-amd.js"))  # never in _static (widgets would render 3x)


@pytest.mark.parametrize("notebook", template.pages(), ids=lambda p: p.stem)
def test_every_page_shows_its_claims_with_their_verdicts(smoke_site, notebook):
    folder = "book" if notebook.parent.name == "book" else "notebooks"
    shown = (smoke_site / folder / f"{notebook.stem}.html").read_text()
    if notebook.stem == "results":  # the results page: every chapter's claims
        claims = [claim for one in BOOK for claim in one.claims.values()]
    else:
        claims = list(chapter(notebook.stem).claims.values())
    assert not claims_not_shown(shown, claims), f"{notebook.name} does not show these claims"  # each in its table
    if claims and notebook.stem != "results":
        assert "What we find at the smoke scale." in shown


def test_the_results_command_lists_every_claim_and_explanation(smoke_site, book_env, monkeypatch, capsys, tmp_path):
    from bnlib.book.__main__ import main
    from bnlib.book.chapters import ch13_why_batchnorm_works as bottom_line

    for name in ("BNLIB_CACHE", "BNLIB_STORE", "BNLIB_DATA", ENV_FINDINGS):
        monkeypatch.setenv(name, book_env[name])
    code, out, err = run_cli(capsys, "--scale", "smoke", "results", "--csv", str(tmp_path / "all.csv"), entry=main)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "all.csv")
    keys = [(c.notebook, key) for c in BOOK for key in c.claims]
    keys += [(bottom_line.CHAPTER.notebook, e.name) for e in bottom_line.EXPLANATIONS]
    assert list(zip(table["chapter"], table["claim"], strict=True)) == keys
    assert all(f"| {notebook} | {key} |" in out for notebook, key in keys), out  # the Markdown rows
    assert f"({len(keys) - len(bottom_line.EXPLANATIONS)} claims)" in out and "explanations)" in out


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run tests/setup.sh (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]
    flags += ["--disable-background-networking", "--disable-component-update"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(smoke_site):
    handler = functools.partial(_QuietHandler, directory=str(smoke_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _book_pages(site: Path) -> list[str]:
    """The pages a reader visits: the root redirect and every page of the table of contents."""
    return [
        "index.html",
        *sorted(p.relative_to(site).as_posix() for d in ("book", "notebooks") for p in (site / d).glob("*.html")),
    ]


# Every table fits the window or sits in a container that scrolls sideways (never clipped); the
# claim tables (their rule folded in a details element) fit the page's column at 1,280 px, with no
# sideways scroll; and the book's tables (.bnlib-table) align their headers like their cells.
_TABLE_CHECK = """() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  document.querySelectorAll("table").forEach((table, i) => {
    let node = table.parentElement, scrolls = false;
    while (node && node !== document.body) {
      if (["auto", "scroll"].includes(getComputedStyle(node).overflowX)) { scrolls = true; break; }
      node = node.parentElement;
    }
    const right = table.getBoundingClientRect().right;
    if (!scrolls && right > width + 1) {
      problems.push(`table ${i} is clipped: its right edge at ${right}px, window ${width}px`);
    }
    const column = table.parentElement.clientWidth;
    if (table.closest(".bnlib-table") && table.querySelector("details") && table.scrollWidth > column + 1) {
      problems.push(`claim table ${i} is ${table.scrollWidth - column}px wider than the page's column`);
    }
    const th = table.querySelector("th"), td = table.querySelector("td");
    const align = (cell) => getComputedStyle(cell).textAlign;
    if (table.closest(".bnlib-table") && th && td && align(th) !== align(td)) {
      problems.push(`table ${i}: headers aligned ${align(th)}, cells ${align(td)}`);
    }
  });
  return problems;
}"""


# A chapter opens with its question: its set-up cells fold away, so the first thing a reader sees
# after the title and its Colab link is prose, not code.
_OPENS_WITH_PROSE = """() => {
  const main = document.querySelector("main") || document.body;
  const shown = (e) => e.offsetParent !== null;
  const items = [...main.querySelectorAll("p, div.cell_input")].filter(shown);
  const prose = items.findIndex((e) => e.tagName === "P" && !e.textContent.includes("Open this page in Colab"));
  const code = items.findIndex((e) => e.tagName !== "P");
  return code === -1 || (prose !== -1 && prose < code);
}"""


def _dark_mode_problems(page, path: str, screenshots: Path) -> list[str]:
    """In the theme's dark mode, every figure must carry its own light background: a transparent
    one leaves dark text and lines on a dark page. Checked on a screenshot of each figure."""
    from PIL import Image

    page.evaluate(
        "() => { document.documentElement.dataset.theme = 'dark'; document.documentElement.dataset.mode = 'dark'; }"
    )
    page.wait_for_timeout(200)
    problems = []
    figures = page.locator("main img")
    for i in range(figures.count()):
        figure = figures.nth(i)
        box = figure.bounding_box()
        if not figure.is_visible() or box is None or box["width"] < 150:
            continue  # logos, icons and figures behind a closed tab
        shot = screenshots / f"{path.replace('/', '_')}-{i}.png"
        figure.screenshot(path=str(shot))
        pixels = Image.open(shot).convert("L")
        # 4 px in from each corner (past the theme's rounded border). The theme dims images in dark
        # mode (white shows as ~180); a transparent figure shows the page's own dark grey (< 60).
        corners = [pixels.getpixel((x, y)) for x in (4, pixels.width - 5) for y in (4, pixels.height - 5)]
        if min(corners) < 128:
            problems.append(f"{path}: figure {i} is dark at its corners in dark mode (transparent background?)")
    page.evaluate(
        "() => { document.documentElement.dataset.theme = 'light'; document.documentElement.dataset.mode = 'light'; }"
    )
    return problems


def test_every_page_renders_in_chromium(smoke_site, served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    # a missing file is a response, not a failed request: every one the page asks for must exist
    page.on("response", lambda r: problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    checked = {}
    for path in _book_pages(smoke_site):
        page.goto(f"{served}/{path}", wait_until="networkidle")
        page.wait_for_timeout(500)
        html = (smoke_site / path).read_text()
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.src, e.complete && e.naturalWidth > 0])")
        problems += [f"{path}: image does not decode: {src[:80]}" for src, ok in images if not ok]
        if re.search(r'class="math', html):
            if page.locator("mjx-container").count() == 0:
                problems.append(f"{path}: math did not render")
        if "application/vnd.jupyter.widget-view+json" in html:
            if page.locator(".jupyter-widgets .widget-slider, .jupyter-widgets.widget-slider").count() == 0:
                problems.append(f"{path}: widgets did not render from saved state")
        if path.startswith("notebooks/"):
            links = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
            expected = path.replace(".html", ".ipynb")
            if not links or not all(link.endswith(expected) for link in links):
                problems.append(f"{path}: Colab links {links} do not point at {expected}")
        problems += [f"{path}: {problem}" for problem in page.evaluate(_TABLE_CHECK)]
        if path.startswith("notebooks/") and not page.evaluate(_OPENS_WITH_PROSE):
            problems.append(f"{path}: the page shows code before its first sentence")
        problems += _dark_mode_problems(page, path, tmp_path)
        checked[path] = {"images": len(images), "math": page.locator("mjx-container").count()}
    assert not problems, "\n".join(problems)
    assert any(v["math"] for v in checked.values()) and any(v["images"] > 1 for v in checked.values())


def test_a_page_executed_with_other_bnlib_source_is_executed_again(tmp_path, monkeypatch):
    """The execution cache holds a page with the bnlib it ran with: a page whose cells are unchanged
    but whose rules or figures changed in bnlib is not served from the cache."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    notebook = tmp_path / "page.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), notebook)
    cache = get_cache(str(tmp_path / "cache"))

    def executed_with(digest: str) -> None:
        stage = cache.add_nb_to_project(str(notebook))
        nb = nbformat.read(notebook, as_version=4)
        bundle = CacheBundleIn(nb, stage.uri, data={build.SOURCE_KEY: digest})
        cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)

    assert not build._cached(notebook, tmp_path / "cache")
    executed_with(build.source_digest())
    assert build._cached(notebook, tmp_path / "cache")
    executed_with("an older bnlib")
    assert not build._cached(notebook, tmp_path / "cache")
    monkeypatch.setattr(build, "ROOT", _copy_of_bnlib(tmp_path))
    executed_with(build.source_digest())
    (build.ROOT / "bnlib" / "book" / "claims.py").write_text("# a rule changed\n", encoding="utf-8")
    assert not build._cached(notebook, tmp_path / "cache")


def test_the_pages_of_one_build_measure_each_claim_once(tmp_path, monkeypatch):
    """In a book build (the session's `findings` names the build's folder) a page reads the finding
    an earlier page measured; fewer seeds measure it again, and outside a build nothing is shared."""
    measured = []

    def measure(session) -> Finding:
        measured.append(session.scale)
        return Finding(f"measurement {len(measured)}", Verdict.PARTLY, f"summary {len(measured)}")

    last = BOOK[-1]
    monkeypatch.setitem(last.claims, "synthetic", Claim("a claim", "the paper", "a rule", measure))
    built = contents.session("cpu", findings=tmp_path)
    first = last.finding("synthetic", built)
    forget()  # the next page: a process of its own
    assert last.finding("synthetic", built) == first and measured == ["cpu"]
    forget()
    fewer = built.but(seeds=1)
    assert last.finding("synthetic", fewer) != first
    assert last.finding("synthetic", fewer.but(scale="smoke")).measured == "measurement 3"
    forget()
    assert last.finding("synthetic", built.but(findings=None)).measured == "measurement 4"
    forget()


def _copy_of_bnlib(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "bnlib", copy / "bnlib", ignore=shutil.ignore_patterns("__pycache__"))
    return copy
