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
    from deepsad_core.bundle.read import BundleDetector, load_detector
    from deepsad_core.detectors.contract import load_model
    from deepsad_core.detectors.deepsad import DeepSAD
    from deepsad_core.exceptions import NotFittedError
    from deepsad_core.model.training import Progress

__version__ = "0.2.0"

__all__ = [
    "BundleDetector",
    "DataError",
    "DeepSAD",
    "DeepSADError",
    "NotFittedError",
    "Progress",
    "TrainingCancelled",
    "TrainingDivergedError",
    "WeightTransferError",
    "__version__",
    "load_detector",
    "load_model",
]

_LAZY = {
    "DeepSAD": "deepsad_core.detectors.deepsad",
    "NotFittedError": "deepsad_core.exceptions",
    "BundleDetector": "deepsad_core.bundle.read",
    "Progress": "deepsad_core.model.training",
    "load_detector": "deepsad_core.bundle.read",
    "load_model": "deepsad_core.detectors.contract",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepsad_core' has no attribute {name!r}")
