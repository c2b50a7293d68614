"""The application service: projects (workspace on disk), labels, rounds and their worker.

The pages' only door to the engine: everything ``app.py`` and ``pages/`` use is named here. Names are
imported on first use, so that the map process (which imports :mod:`deepsad_core.studio.maps` only)
starts without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepsad_core.base.threshold import ThresholdChoice, threshold_for_counts, tradeoff_curve
    from deepsad_core.bundle.read import load_detector
    from deepsad_core.data import SUPPORTED_SUFFIXES
    from deepsad_core.exceptions import DeepSADError, ProjectNameError
    from deepsad_core.loop.query import DEFAULT_MIX
    from deepsad_core.loop.settings import DETECTORS, NETWORKS
    from deepsad_core.studio.maps import start_map_process
    from deepsad_core.studio.project import Project
    from deepsad_core.studio.store import LABELS, ProjectStore
    from deepsad_core.studio.worker import RoundStatus, RoundWorker

_WHERE = {
    "ThresholdChoice": "deepsad_core.base.threshold",
    "threshold_for_counts": "deepsad_core.base.threshold",
    "tradeoff_curve": "deepsad_core.base.threshold",
    "load_detector": "deepsad_core.bundle.read",
    "SUPPORTED_SUFFIXES": "deepsad_core.data",
    "DeepSADError": "deepsad_core.exceptions",
    "ProjectNameError": "deepsad_core.exceptions",
    "DEFAULT_MIX": "deepsad_core.loop.query",
    "DETECTORS": "deepsad_core.loop.settings",
    "NETWORKS": "deepsad_core.loop.settings",
    "start_map_process": "deepsad_core.studio.maps",
    "Project": "deepsad_core.studio.project",
    "LABELS": "deepsad_core.studio.store",
    "ProjectStore": "deepsad_core.studio.store",
    "RoundStatus": "deepsad_core.studio.worker",
    "RoundWorker": "deepsad_core.studio.worker",
}

__all__ = [
    "DEFAULT_MIX",
    "DETECTORS",
    "LABELS",
    "NETWORKS",
    "SUPPORTED_SUFFIXES",
    "DeepSADError",
    "Project",
    "ProjectNameError",
    "ProjectStore",
    "RoundStatus",
    "RoundWorker",
    "ThresholdChoice",
    "load_detector",
    "start_map_process",
    "threshold_for_counts",
    "tradeoff_curve",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
