"""The book layer: everything the chapters need beyond the reproduction library.

| module | what |
|---|---|
| `chapters` | one module per chapter: the runs it reads, its measurements and figures, its claims |
| `contents` | the table of contents: every chapter in order, and the sessions the entry points make |
| `chapter`, `session` | what a chapter is (`Chapter`); the session every measurement receives |
| `plan` | the run plan (generic): a chapter's reads (`Read`), the probes, what trains, its cost |
| `claims`, `report` | what a claim is (`Claim`, `Finding`, `Verdict`); how the book shows its claims |
| `runs`, `measures`, `ladder` | what several chapters share: runs, measurements, the ablation ladder |
| `plotting`, `widgets`, `html` | the book's figures, its widgets (ipywidgets 7 and 8), its tables |
| `template` | each chapter's first and last cells, and what they do (`setup`, `start`, `evidence`) |
| `provenance` | where a page's evidence came from, from its records: store or cache, commit, machine, data |
| `store` | the book's run store: train what the book reads, publish it, verify it by retraining |
| `build`, `__main__` | `python -m bnlib.book`: render the published runs; train, publish, verify them |
| `project` | the repository address and tag |

The reproduction library (`bnlib` outside this folder) never imports it.
"""

from bnlib.book.template import evidence, setup, start
from bnlib.experiments import default_scale

__all__ = ["default_scale", "evidence", "setup", "start"]
