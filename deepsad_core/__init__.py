"""DeepSAD Studio's engine: Deep Semi-supervised Anomaly Detection as a plain Python library."""

from deepsad_core.estimator import DeepSAD
from deepsad_core.exceptions import (
    DataError,
    DeepSADError,
    NotFittedError,
    TrainingCancelled,
    TrainingDivergedError,
    WeightTransferError,
)
from deepsad_core.training import Progress

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DeepSAD",
    "DeepSADError",
    "NotFittedError",
    "Progress",
    "TrainingCancelled",
    "TrainingDivergedError",
    "WeightTransferError",
    "__version__",
]
