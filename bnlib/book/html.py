"""Tables and generated prose as the pages show them.

A table is wrapped in a block that scrolls sideways when it is wider than the page (never clipped)
and has its headers aligned like its cells; the styling travels inside the HTML, so it looks the
same on the static pages and in Colab.
"""

from __future__ import annotations

import html

import pandas as pd
from IPython.display import HTML, Markdown

_STYLE = (
    "<style>.bnlib-table{overflow-x:auto;max-width:100%;margin-bottom:1em}"
    ".bnlib-table table{border-collapse:collapse;font-size:0.9em}"
    ".bnlib-table th,.bnlib-table td{text-align:left;vertical-align:top;padding:0.25em 0.6em;"
    "border-bottom:1px solid #ddd}"
    # a long formula breaks anywhere rather than widen its table past the page; the verdict never
    # breaks inside a word
    ".bnlib-table td{min-width:6em;overflow-wrap:anywhere}.bnlib-table td:last-child{overflow-wrap:normal}"
    ".bnlib-table summary{cursor:pointer;font-size:0.85em;opacity:0.75}</style>"
)


def table_html(frame: pd.DataFrame, caption: str = "", fold: str | None = None) -> str:
    """A DataFrame as the book's HTML table (floats with 3 significant digits). `fold`: a column
    shown folded away under the last column's value (a details element: the claim tables' rule, so
    that claim, source, measurement and verdict read at a glance)."""
    if fold is not None:
        frame = frame.copy()
        folded, last = frame.pop(fold), frame.columns[-1]
        frame = frame.map(lambda v: html.escape(v) if isinstance(v, str) else v)
        frame[last] = [
            f"{value}<details><summary>{html.escape(fold)}</summary>{html.escape(str(text))}</details>"
            for value, text in zip(frame[last], folded, strict=True)
        ]
    body = frame.to_html(index=False, border=0, justify="left", float_format=lambda v: f"{v:.3g}", escape=fold is None)
    body = body.replace(' style="text-align: left;"', "")
    lead = f"<p><em>{caption}</em></p>" if caption else ""
    return f'{_STYLE}{lead}<div class="bnlib-table">{body}</div>'


def table(frame: pd.DataFrame, caption: str = "", fold: str | None = None) -> HTML:
    """Display a DataFrame as the book's table."""
    return HTML(table_html(frame, caption, fold))


def prose(text: str) -> Markdown:
    """Display generated Markdown (sentences chosen or filled in from the runs)."""
    return Markdown(text)
