"""The project's exception tree: every error a caller may want to catch by kind."""

from __future__ import annotations

from typing import Any


class DeepSADError(Exception):
    """Base class of every error raised on purpose by ``deepsad_core``."""


def __getattr__(name: str) -> Any:
    # NotFittedError is also scikit-learn's, and importing scikit-learn takes most of a second: made on
    # first use, so that the light users of the package (`deepsad score`, the bundle reader) start fast
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(DeepSADError, SklearnNotFittedError):
        """A method that needs a fitted model was called before ``fit`` (or ``load``); also a ``ValueError``."""

    NotFittedError.__qualname__ = "NotFittedError"  # pickled by name, like the classes above
    globals()["NotFittedError"] = NotFittedError  # one class, whoever asks
    return NotFittedError


class TrainingCancelled(DeepSADError):
    """Training was stopped by the progress callback; the model is left as it was before."""


class TrainingDivergedError(DeepSADError, RuntimeError):
    """The loss became NaN or infinite; the model is left as it was before the call."""


class WeightTransferError(DeepSADError, RuntimeError):
    """Pretrained encoder weights could not be copied, tensor for tensor, into the network."""


class DataError(DeepSADError, ValueError):
    """Input data that cannot be used; the message names the file, column or row and the fix."""


class ImageOverLimitError(DataError):
    """An image over a size limit: readable, but not decoded (the loader skips it and says why)."""


class ProjectNameError(DeepSADError, ValueError):
    """A project name that makes no usable folder name."""


class OutputExistsError(DeepSADError, FileExistsError):
    """An output path is taken: by something that is not ours (never touched), or by a bundle (needs ``force``)."""


class RoundBusyError(DeepSADError, RuntimeError):
    """A round of this project is already running in another process."""


class BackboneError(DeepSADError, RuntimeError):
    """A backbone or its weights cannot be had, or the weights do not fit the network."""


class BundleError(DeepSADError, ValueError):
    """A bundle that is not one, was changed after export, or comes from an incompatible version."""


class ExportError(DeepSADError, RuntimeError):
    """The exported network does not reproduce the live model's scores, or could not be written."""


class MapProcessError(DeepSADError, RuntimeError):
    """The map process died during a job (killed, out of memory); the next job starts a new one."""
