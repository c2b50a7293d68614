"""Writing a detector bundle: the network as ONNX and TorchScript, plus all it needs to score anywhere.

```
bundle/                       (or the same files in bundle.zip)
  model.onnx                  input "input" -> outputs "score" (n,), "latent" (n, rep_dim)
  model.torchscript.pt        the same network, TorchScript
  manifest.json               preprocessor, centre c, threshold and how it was chosen, input schema,
                              training config, label counts, round, metrics, versions, parity check
  SHA256SUMS                  a checksum for every file above
```

Loading (:mod:`deepsad_core.detector`) verifies the checksums and never unpickles. At export the
ONNX and TorchScript scores on a sample of the data are compared with the live model; export fails
when they differ by more than ``PARITY_RTOL`` relative to the score (floored at 1e-3 of the mean
score, so float32 noise on scores near zero does not count).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
import warnings
import zipfile
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import deepsad_core
from deepsad_core.data.preprocess import ImagePreprocessor, TabularPreprocessor
from deepsad_core.estimator import DeepSAD
from deepsad_core.exceptions import DeepSADError

__all__ = ["BUNDLE_FORMAT", "PARITY_RTOL", "BundleFormat", "ExportError", "export_bundle"]

BUNDLE_FORMAT = "deepsad-bundle"
BUNDLE_VERSION = 1
PARITY_RTOL = 1e-4
ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE, SUMS_FILE = (
    "model.onnx",
    "model.torchscript.pt",
    "manifest.json",
    "SHA256SUMS",
)


class BundleFormat(StrEnum):
    FOLDER = "folder"
    ZIP = "zip"


class ExportError(DeepSADError, RuntimeError):
    """The exported network does not reproduce the live model's scores, or could not be written."""


class ScoringNetwork(nn.Module):
    """phi plus the centre: ``x -> (||phi(x) - c||^2, phi(x))``, the graph that is exported."""

    def __init__(self, net: nn.Module, center: np.ndarray) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("center", torch.as_tensor(np.asarray(center, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.net(x)
        return ((latent - self.center) ** 2).sum(dim=1), latent


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "deepsad_core": deepsad_core.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _write_networks(model: DeepSAD, folder: Path) -> ScoringNetwork:
    scoring = ScoringNetwork(model.net_.cpu(), model.center_).eval()
    example = torch.zeros((2, *model.input_shape_), dtype=torch.float32)
    with warnings.catch_warnings():  # the exporters' deprecation chatter is not the user's business
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scoring,
            (example,),
            str(folder / ONNX_FILE),
            input_names=["input"],
            output_names=["score", "latent"],
            dynamic_axes={"input": {0: "n"}, "score": {0: "n"}, "latent": {0: "n"}},
            dynamo=False,
        )
        with torch.no_grad():
            torch.jit.trace(scoring, example).save(str(folder / TORCHSCRIPT_FILE))
    model.net_.to(model.device_)
    return scoring


def _parity(model: DeepSAD, folder: Path, X_sample: np.ndarray) -> dict[str, Any]:
    """Max relative difference of ONNX and TorchScript scores against the live model."""
    import onnxruntime as ort

    live = model.decision_function(X_sample)
    session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(["score"], {"input": X_sample.astype(np.float32)})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(str(folder / TORCHSCRIPT_FILE))
    with torch.no_grad():
        ts_scores = script(torch.as_tensor(X_sample, dtype=torch.float32))[0].numpy()
    # relative to each score, floored at 1e-3 of the mean score: near the centre a score is a tiny
    # difference of float32 numbers, and its last-bit noise is not a disagreement
    scale = np.maximum(np.abs(live), 1e-3 * np.abs(live).mean() + 1e-12)
    result = {
        "samples": len(X_sample),
        "onnx_max_rel_diff": float(np.max(np.abs(onnx_scores - live) / scale)),
        "torchscript_max_rel_diff": float(np.max(np.abs(ts_scores - live) / scale)),
        "tolerance": PARITY_RTOL,
    }
    result["passed"] = max(result["onnx_max_rel_diff"], result["torchscript_max_rel_diff"]) <= PARITY_RTOL
    return result


def input_schema(preprocessor: TabularPreprocessor | ImagePreprocessor, input_shape: tuple[int, ...]) -> dict:
    if isinstance(preprocessor, ImagePreprocessor):
        return {"kind": "image", "height": preprocessor.size[0], "width": preprocessor.size[1],
                "channels": preprocessor.channels, "model_input": list(input_shape)}  # fmt: skip
    return {
        "kind": "tabular",
        "columns": preprocessor.columns,
        "numeric": list(preprocessor.numeric),
        "categorical": {k: v for k, v in preprocessor.categorical.items()},
        "ignored": preprocessor.ignored,
        "features": preprocessor.feature_names,
        "model_input": list(input_shape),
    }


def export_bundle(
    model: DeepSAD,
    preprocessor: TabularPreprocessor | ImagePreprocessor,
    out: str | os.PathLike,
    *,
    X_sample: np.ndarray,
    threshold: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    fmt: BundleFormat | str | None = None,
) -> list[Path]:
    """Write the bundle for ``model`` to ``out`` (a folder, or a ``.zip``); returns the paths written.

    ``X_sample`` (model input, e.g. up to 1,000 rows of the training data) drives the parity check.
    ``threshold`` is ``{"value", "method", "detail"}`` (default: the model's ``threshold_``); ``info``
    adds round, training config, label counts and metrics to the manifest.
    """
    out = Path(out)
    fmt = BundleFormat(fmt or (BundleFormat.ZIP if out.suffix.lower() == ".zip" else BundleFormat.FOLDER))
    model._check_fitted()
    threshold = threshold or {"value": float(model.threshold_), "method": "model", "detail": "the model's threshold_"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        _write_networks(model, tmp)
        parity = _parity(model, tmp, np.asarray(X_sample, dtype=np.float32)[:1000])
        if not parity["passed"]:
            raise ExportError(
                f"exported network disagrees with the live model: ONNX {parity['onnx_max_rel_diff']:.2e}, "
                f"TorchScript {parity['torchscript_max_rel_diff']:.2e} > tolerance {PARITY_RTOL:.0e} (relative)"
            )
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "network": model.network_spec_.to_dict(),
            "input": input_schema(preprocessor, model.input_shape_),
            "preprocessor": preprocessor.to_dict(),
            "center": model.center_.tolist(),
            "threshold": threshold,
            "model_params": {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params().items()},
            "versions": _versions(),
            "parity": parity,
            "files": {name: sha256((tmp / name).read_bytes()) for name in (ONNX_FILE, TORCHSCRIPT_FILE)},
            **(info or {}),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, default=_json_default))
        sums = "".join(f"{sha256((tmp / n).read_bytes())}  {n}\n" for n in (ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE))
        (tmp / SUMS_FILE).write_text(sums)
        if fmt is BundleFormat.ZIP:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in (ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE, SUMS_FILE):
                    zf.write(tmp / name, name)
            partial = out.with_name(f".{out.name}.partial")
            partial.write_bytes(buffer.getvalue())
            os.replace(partial, out)
            shutil.rmtree(tmp)
            return [out]
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return sorted(out.iterdir())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")
