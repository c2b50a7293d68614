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
import json
import os
import platform
import shutil
import tempfile
import threading
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
from deepsad_core.exceptions import DeepSADError, OutputExistsError

__all__ = ["BUNDLE_FORMAT", "PARITY_RTOL", "BundleFormat", "ExportError", "check_output", "export_bundle", "is_bundle"]

BUNDLE_FORMAT = "deepsad-bundle"
BUNDLE_VERSION = 1
PARITY_RTOL = 1e-4
ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE, SUMS_FILE = (
    "model.onnx",
    "model.torchscript.pt",
    "manifest.json",
    "SHA256SUMS",
)
_BUNDLE_FILES = (ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE, SUMS_FILE)
_EXPORTER_LOCK = threading.Lock()  # torch's ONNX exporter keeps global state: one export at a time per process


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
    with _EXPORTER_LOCK, warnings.catch_warnings():  # the exporters' deprecation chatter is not the user's business
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
    force: bool = False,
) -> list[Path]:
    """Write the bundle for ``model`` to ``out`` (a folder, or a ``.zip``); returns the paths written.

    ``X_sample`` (model input, e.g. up to 1,000 rows of the training data) drives the parity check.
    ``threshold`` is ``{"value", "method", "detail"}`` (default: the model's ``threshold_``); ``info``
    adds round, training config, label counts and metrics to the manifest. An existing ``out`` is
    replaced only when it is a bundle and ``force`` is set; anything else there raises
    :class:`~deepsad_core.exceptions.OutputExistsError` and is left as it was.
    """
    out = Path(out)
    fmt = BundleFormat(fmt or (BundleFormat.ZIP if out.suffix.lower() == ".zip" else BundleFormat.FOLDER))
    model._check_fitted()
    threshold = threshold or {"value": float(model.threshold_), "method": "model", "detail": "the model's threshold_"}
    check_output(out, force)  # before the work: a refusal costs nothing
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
            with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".partial", delete=False) as f:
                partial = Path(f.name)  # a unique name: two exports at once never write the same file
                with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
                    for name in (ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE, SUMS_FILE):
                        zf.write(tmp / name, name)
            try:
                check_output(out, force)  # again, just before the rename: the path may have changed
                os.replace(partial, out)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            shutil.rmtree(tmp)
            return [out]
        _replace_folder(tmp, out, force)
        return sorted(out.iterdir())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_bundle(path: Path) -> bool:
    """True for a bundle folder or zip that this module wrote: its manifest names the bundle format, and a
    folder holds nothing else."""
    try:
        if path.is_dir():
            names = {p.name for p in path.iterdir()}
            if not names or not names <= set(_BUNDLE_FILES):
                return False
            manifest = json.loads((path / MANIFEST_FILE).read_text())
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if not set(zf.namelist()) <= set(_BUNDLE_FILES):
                    return False
                manifest = json.loads(zf.read(MANIFEST_FILE))
        else:
            return False
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == BUNDLE_FORMAT


def check_output(out: str | os.PathLike, force: bool = False) -> None:
    """Refuse an ``out`` that exists, unless it is a bundle and ``force`` is set; never touch anything else."""
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not is_bundle(out):
        raise OutputExistsError(
            f"{out.name} already exists and is not a DeepSAD bundle; it is left untouched: choose a new path"
        )
    if not force:
        raise OutputExistsError(f"{out.name} already holds a bundle; pass force=True (--force) to replace it")


def _replace_folder(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished bundle folder ``tmp`` to ``out``; an old bundle there is swapped out, then removed."""
    check_output(out, force)
    if not out.exists():
        os.rename(tmp, out)  # fails, rather than merging, if something appeared at ``out`` meanwhile
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old)  # an empty folder is replaced by a rename
    os.rename(tmp, out)
    shutil.rmtree(old)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")
