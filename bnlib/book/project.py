"""Where the project lives: the one place that names the repository and the release tag.

The book's Colab buttons, each chapter's first cell (which installs bnlib on Colab), the address
Colab fetches the published runs from and the book's configuration are all generated from these
two constants.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout (an installed bnlib has no book around it)
REPO_URL = "https://github.com/bnlib-book/batchnorm-optimization"
REPO_TAG = "main"


def colab_url(notebook: str) -> str:
    """The Colab address of a chapter, e.g. colab_url("notebooks/01_does_batchnorm_help.ipynb")."""
    path = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{REPO_TAG}/{notebook}"


def store_url() -> str:
    """Where Colab fetches the book's published runs from: the repository's store/ at the tag."""
    path = REPO_URL.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{path}/{REPO_TAG}/store"


def install_line() -> str:
    """What a chapter's first cell runs on Colab: bnlib at the tag, pinning neither torch nor
    ipywidgets (Colab's own stay)."""
    return f'%pip install -q "bnlib @ git+{REPO_URL}@{REPO_TAG}"'
