"""Widgets that work in Colab (ipywidgets 7) and Jupyter (8), and in the static book.

`live` re-runs a function when a control changes (needs a kernel: Colab or local Jupyter).
`frames` shows precomputed figures (or HTML) behind a slider linked in the browser, so it also works
on the static pages, where there is no kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import ipywidgets as w
from IPython.display import display


def live(function: Callable[..., None], **controls: w.ValueWidget) -> w.VBox:
    """Display the controls and an output area; call function(**values) now and on every change.

    Sliders should be made with continuous_update=False so a drag triggers one run, not fifty.
    """
    out = w.Output()

    def update(_: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            function(**{name: c.value for name, c in controls.items()})

    for control in controls.values():
        control.observe(update, names="value")
    box = w.VBox([w.HBox(list(controls.values())), out])
    display(box)
    update()
    return box


def frames(images: Mapping[str, bytes | str], description: str = "") -> w.VBox:
    """A slider over precomputed pages, linked in the browser (no kernel needed): PNG images
    (bytes, from `plotting.to_png`) or HTML (str)."""
    labels = list(images)
    pages = w.Tab(
        children=[
            w.Image(value=v, format="png") if isinstance(v, bytes) else w.HTML(value=v)
            for v in (images[k] for k in labels)
        ]
    )
    for i, label in enumerate(labels):
        pages.set_title(i, label)
    slider = w.IntSlider(value=0, min=0, max=len(labels) - 1, description=description, continuous_update=False)
    w.jslink((slider, "value"), (pages, "selected_index"))
    box = w.VBox([slider, pages])
    display(box)
    return box
