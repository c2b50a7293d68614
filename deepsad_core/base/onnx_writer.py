"""Torch modules to ONNX and TorchScript: the engine's one exporter lock and one opset.

Torch's exporters keep global state, so one export runs at a time per process; the backbone's graph
and the bundle's graphs both come through here, with the same opset.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["ONNX_OPSET", "onnx_bytes", "torchscript_bytes"]

ONNX_OPSET = 17
_EXPORTER_LOCK = threading.Lock()


@contextmanager
def _exporting() -> Iterator[None]:
    """Hold the exporter lock, without grad, with the exporters' deprecation chatter silenced (it is not
    the user's business)."""
    with _EXPORTER_LOCK, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield


def onnx_bytes(
    module: nn.Module,
    examples: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> bytes:
    """``module`` as an ONNX graph (TorchScript-based exporter, :data:`ONNX_OPSET`); every named input
    and output gets a dynamic batch axis unless ``dynamic_axes`` says otherwise."""
    buffer = io.BytesIO()
    axes = dynamic_axes if dynamic_axes is not None else {name: {0: "n"} for name in [*inputs, *outputs]}
    with _exporting():
        torch.onnx.export(
            module.eval(),
            examples,
            buffer,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def torchscript_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` traced on ``example`` and saved as TorchScript."""
    buffer = io.BytesIO()
    with _exporting():
        torch.jit.save(torch.jit.trace(module.eval(), example), buffer)
    return buffer.getvalue()
