"""The book layer: everything the chapters need beyond the reproduction library.

| module | what |
|---|---|
| `template` | each chapter's first cells, and what its set-up and start cells do (`setup`, `start`) |
| `build` | `python -m bnlib.book`: execute the chapters at a scale, render the HTML |
| `plan` | the run plan: which runs the chapters read, with which seeds and probes |
| `tables` | the numbers behind the chapters' tables, from the runs |
| `claims` | the claims, one module per chapter: what the paper says, what we measure |
| `section4` | Section 4's statements swept over random instances and trained networks |
| `plotting`, `widgets` | the book's figures and its widgets (ipywidgets 7 and 8) |
| `project` | the repository address and tag |

The reproduction library (`bnlib` outside this folder) never imports it.
"""

from bnlib.book.template import setup, start
from bnlib.experiments import default_scale

__all__ = ["default_scale", "setup", "start"]
