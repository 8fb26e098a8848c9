"""Project-level promises: CI runs the README's test command; dependencies are never pinned."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_command = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci_command
    assert ci_command in (ROOT / "README.md").read_text()


def test_dependencies_have_lower_bounds_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    for requirement in requirements:
        name = re.split(r"[<>=!~ \[]", requirement)[0]
        assert "==" not in requirement, requirement
        if name in ("torch", "torchvision", "ipywidgets"):
            assert "<" not in requirement, f"{requirement}: Colab ships its own {name}"
    ipywidgets = next(r for r in requirements if r.startswith("ipywidgets"))
    assert re.fullmatch(r"ipywidgets>=7(\.\d+)*", ipywidgets), "ipywidgets 7 (Colab) must stay allowed"
