"""bnlib: the helper package of the executable book reproducing Santurkar et al. (NeurIPS 2018),
"How Does Batch Normalization Help Optimization?".

The data path reads top to bottom: a `RunConfig` (``bnlib.config``, usually built from a named
experiment in ``bnlib.experiments``) is trained by ``bnlib.train``, stored as a run record by
``bnlib.records`` and turned into figures by the chapters. ``bnlib.sweep`` runs many configs at once
(Ray tasks across cores, GPUs or a cluster).
"""

from importlib.metadata import version

from bnlib.config import NoiseParams, RunConfig
from bnlib.errors import BnlibError
from bnlib.experiments import experiment, experiment_names
from bnlib.records import Record, load_or_run
from bnlib.sweeps import Job, sweep

__version__ = version("bnlib")

__all__ = [
    "BnlibError",
    "Job",
    "NoiseParams",
    "Record",
    "RunConfig",
    "experiment",
    "experiment_names",
    "load_or_run",
    "sweep",
]
