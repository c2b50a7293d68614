"""DeepSAD Studio's engine: Deep Semi-supervised Anomaly Detection as a plain Python library.

The estimator (and with it torch) is imported on first use, so that light users of the package
(the label store, the data loader, the CLI's help) start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepsad_core.exceptions import (
    DataError,
    DeepSADError,
    TrainingCancelled,
    TrainingDivergedError,
    WeightTransferError,
)

if TYPE_CHECKING:
    from deepsad_core.detector import Detector, load_detector
    from deepsad_core.estimator import DeepSAD
    from deepsad_core.exceptions import NotFittedError
    from deepsad_core.training import Progress

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DeepSAD",
    "DeepSADError",
    "Detector",
    "NotFittedError",
    "Progress",
    "TrainingCancelled",
    "TrainingDivergedError",
    "WeightTransferError",
    "__version__",
    "load_detector",
]

_LAZY = {
    "DeepSAD": "deepsad_core.estimator",
    "NotFittedError": "deepsad_core.exceptions",
    "Detector": "deepsad_core.detector",
    "Progress": "deepsad_core.training",
    "load_detector": "deepsad_core.detector",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepsad_core' has no attribute {name!r}")
