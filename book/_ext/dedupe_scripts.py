"""Sphinx extension: drop repeated <script> lines from the built pages.

Under Jupyter Book 1, sphinx-thebe and sphinx-togglebutton register their inline configuration
scripts twice, so every page declares `const THEBE_JS_URL` twice and the browser throws. The
duplicates are added after every page-context hook, so this cleans the written HTML instead.
"""

from pathlib import Path


def _dedupe_page(path: Path) -> None:
    seen, kept = set(), []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        key = line.strip()
        if key.startswith("<script") and key.endswith("</script>"):
            if key in seen:
                continue
            seen.add(key)
        kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")


def _dedupe(app, exception):
    if exception is None and app.builder.format == "html":
        for page in Path(app.outdir).rglob("*.html"):
            _dedupe_page(page)


def setup(app):
    app.connect("build-finished", _dedupe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
