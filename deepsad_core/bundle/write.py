"""Writing a detector bundle: the scoring graph as ONNX, plus all it needs to score anywhere.

```
bundle/                       (or the same files in bundle.zip)
  model.onnx                  input "input" -> outputs "score" (n,), "latent" (n, rep_dim); for the
                              ensemble the whole detector (forest, kNN, Deep SAD, supervised, fusion,
                              :mod:`deepsad_core.detectors.graphs`);
                              for photographs the pretrained backbone in front, in the same graph
  model.torchscript.pt        Deep SAD alone on its own input only: the same network, TorchScript
  manifest.json               preprocessor, centre c, threshold and how it was chosen, what the score
                              means and its range (detector.score), input schema,
                              training config, label counts, round, metrics, versions, parity check
  SHA256SUMS                  a checksum for every file above
```

Loading (:mod:`deepsad_core.bundle.read`) verifies the checksums and never unpickles. At export the
ONNX and TorchScript scores on a sample of the data are compared with the live model; export fails
when they differ by more than ``PARITY_RTOL`` relative to the score, floored at the spread of the
scores (:func:`parity_scale`), so float32 noise on scores near zero does not count.
"""

from __future__ import annotations

import hashlib
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
import onnx
import torch

import deepsad_core
from deepsad_core.base.atomic import atomic_file, atomic_folder
from deepsad_core.base.threshold import ThresholdChoice
from deepsad_core.bundle.format import (
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_FILE,
    ONNX_FILE,
    SIGNATURE_FILE,
    SUMS_FILE,
    TORCHSCRIPT_FILE,
    sign,
)
from deepsad_core.data.preprocess import ImagePreprocessor, TabularPreprocessor
from deepsad_core.detectors.contract import TrainableDetector
from deepsad_core.exceptions import ExportError, OutputExistsError
from deepsad_core.model.backbone import FeatureExtractor, extract_features

__all__ = ["BUNDLE_FORMAT", "PARITY_RTOL", "BundleFormat", "ExportError", "check_output", "export_bundle", "is_bundle"]

PARITY_RTOL = 1e-4
_BACKBONE_SCORE_BATCH = 32  # images per call through a backbone: its activations, not the rows, set the memory


class BundleFormat(StrEnum):
    FOLDER = "folder"
    ZIP = "zip"


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


def _write_networks(
    model: TrainableDetector, folder: Path, backbone: FeatureExtractor | None = None, channels: int = 3
) -> list[str]:
    """Write the scoring graphs of ``model`` (behind ``backbone``, for ``channels``-channel images, when
    given) into ``folder``; returns the model files written."""
    graph = model.scoring_graph()
    if backbone is None:
        (folder / ONNX_FILE).write_bytes(graph)
        script = model.scoring_torchscript()
        if script is None:  # TorchScript cannot hold the IsolationForest member
            return [ONNX_FILE]
        (folder / TORCHSCRIPT_FILE).write_bytes(script)
        return [ONNX_FILE, TORCHSCRIPT_FILE]
    composed = _with_backbone(onnx.load_from_string(graph), backbone.onnx_bytes(channels))
    onnx.save(composed, str(folder / ONNX_FILE))
    return [ONNX_FILE]  # nor the ONNX backbone


def _with_backbone(graph: onnx.ModelProto, backbone: bytes) -> onnx.ModelProto:
    """One graph: the backbone (images -> ``features``) feeding the detector graph's ``input``."""
    front = onnx.compose.add_prefix(onnx.load_from_string(backbone), "backbone/")
    front.ir_version = graph.ir_version = max(front.ir_version, graph.ir_version)
    merged = onnx.compose.merge_models(front, graph, io_map=[("backbone/features", "input")])
    for node in merged.graph.node:  # the composed graph keeps the bundle's input name
        node.input[:] = ["input" if name == "backbone/input" else name for name in node.input]
    for value in merged.graph.input:
        if value.name == "backbone/input":
            value.name = "input"
    onnx.checker.check_model(merged)
    return merged


def parity_scale(live: np.ndarray) -> np.ndarray:
    """What each score's difference is measured against: the score itself, floored at the spread of the
    scores (their 1st to 99th percentile). Near the centre a score is a tiny difference of float32 numbers,
    and its last-bit noise is not a disagreement; a wrong operator or a missing preprocessing step moves
    scores by a fair part of their spread, and still fails."""
    q01, q99 = np.quantile(live, [0.01, 0.99])
    return np.maximum(np.abs(live), max(float(q99 - q01), 1e-12))


def _parity(
    model: TrainableDetector,
    folder: Path,
    files: list[str],
    X_sample: np.ndarray,
    backbone: FeatureExtractor | None = None,
) -> dict[str, Any]:
    """Max relative difference of the exported graphs' scores against the live model (on the backbone's
    features of ``X_sample``, computed apart, when there is one)."""
    import onnxruntime as ort

    live = model.decision_function(X_sample if backbone is None else extract_features(backbone, X_sample))
    diffs = {}
    session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    diffs["onnx"] = session.run(["score"], {"input": X_sample.astype(np.float32)})[0]
    if TORCHSCRIPT_FILE in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            script = torch.jit.load(str(folder / TORCHSCRIPT_FILE))
        with torch.no_grad():
            diffs["torchscript"] = script(torch.as_tensor(X_sample, dtype=torch.float32))[0].numpy()
    scale = parity_scale(live)
    result: dict[str, Any] = {"samples": len(X_sample), "tolerance": PARITY_RTOL}
    for backend, scores in diffs.items():
        result[f"{backend}_max_rel_diff"] = float(np.max(np.abs(scores - live) / scale))
    result["passed"] = max(result[f"{b}_max_rel_diff"] for b in diffs) <= PARITY_RTOL
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
    model: TrainableDetector,
    preprocessor: TabularPreprocessor | ImagePreprocessor,
    out: str | os.PathLike,
    *,
    X_sample: np.ndarray,
    threshold: ThresholdChoice | None = None,
    info: dict[str, Any] | None = None,
    fmt: BundleFormat | str | None = None,
    force: bool = False,
    sign_key: bytes | None = None,
    backbone: FeatureExtractor | None = None,
) -> list[Path]:
    """Write the bundle for ``model`` to ``out`` (a folder, or a ``.zip``); returns the paths written.

    ``X_sample`` (model input, e.g. up to 1,000 rows of the training data) drives the parity check.
    ``threshold`` is how the flags are set (default: the model's ``threshold_``); ``info``
    adds round, training config, label counts and metrics to the manifest. An existing ``out`` is
    replaced only when it is a bundle and ``force`` is set; anything else there raises
    :class:`~deepsad_core.exceptions.OutputExistsError` and is left as it was. With ``sign_key`` the
    bundle gets a ``SIGNATURE``: an HMAC-SHA256 of its checksums that ``load_detector(...,
    verify_key=...)`` checks. A ``model`` trained on a pretrained backbone's features is exported with
    ``backbone`` in front of it: the bundle then takes images (``X_sample`` holds images too).
    """
    out = Path(out)
    fmt = BundleFormat(fmt or (BundleFormat.ZIP if out.suffix.lower() == ".zip" else BundleFormat.FOLDER))
    description = model.bundle_description()  # raises NotFittedError before any work
    threshold = threshold or ThresholdChoice(float(model.threshold_), "model", "the model's threshold_")
    check_output(out, force)  # before the work: a refusal costs nothing
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out.parent) as work:
        work = Path(work)
        X_sample = np.asarray(X_sample[:1000], dtype=np.float32)
        files = _write_networks(model, work, backbone, channels=X_sample.shape[1] if X_sample.ndim == 4 else 3)
        parity = _parity(model, work, files, X_sample, backbone)
        if not parity["passed"]:
            found = ", ".join(f"{k.split('_')[0]} {v:.2e}" for k, v in parity.items() if k.endswith("_rel_diff"))
            raise ExportError(
                f"exported network disagrees with the live model: {found} > tolerance {PARITY_RTOL:.0e} (relative)"
            )
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "detector": description,
            "network": model.network_spec_.to_dict(),
            "input": input_schema(preprocessor, X_sample.shape[1:] if backbone else model.input_shape_),
            "backbone": _backbone_info(backbone),
            "preprocessor": preprocessor.to_dict(),
            "center": model.center_.tolist(),
            "threshold": threshold.to_dict(),
            "model_params": _params(model),
            "score_batch": model.score_batch() if backbone is None else _BACKBONE_SCORE_BATCH,
            "versions": _versions(),
            "parity": parity,
            "files": {name: sha256((work / name).read_bytes()) for name in files},
            **(info or {}),
        }
        (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, default=_json_default))
        files.append(MANIFEST_FILE)
        (work / SUMS_FILE).write_text("".join(f"{sha256((work / n).read_bytes())}  {n}\n" for n in files))
        files.append(SUMS_FILE)
        if sign_key is not None:
            (work / SIGNATURE_FILE).write_text(sign((work / SUMS_FILE).read_bytes(), sign_key) + "\n")
            files.append(SIGNATURE_FILE)
        if fmt is BundleFormat.ZIP:
            _write_zip(work, files, out, force)
            return [out]
        with atomic_folder(out) as tmp:
            check_output(out, force)  # again, just before the swap: the path may have changed meanwhile
            for name in files:
                shutil.copyfile(work / name, tmp / name)
        return sorted(out.iterdir())


def _write_zip(work: Path, files: list[str], out: Path, force: bool) -> None:
    with atomic_file(out) as partial:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in files:
                zf.write(work / name, name)
        check_output(out, force)  # again, just before the rename: the path may have changed meanwhile


def _params(model: TrainableDetector) -> dict[str, Any]:
    return json.loads(json.dumps(model.bundle_params(), default=_json_default))


def _backbone_info(backbone: FeatureExtractor | None) -> dict[str, Any] | None:
    if backbone is None:
        return None
    return {**backbone.identity(), "in_graph": True, "source": backbone.source}


def is_bundle(path: Path) -> bool:
    """True for a bundle folder or zip that this module wrote: its manifest names the bundle format, and a
    folder holds nothing else."""
    try:
        if path.is_dir():
            names = {p.name for p in path.iterdir()}
            if not names or not names <= set(BUNDLE_FILES):
                return False
            manifest = json.loads((path / MANIFEST_FILE).read_text())
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if not set(zf.namelist()) <= set(BUNDLE_FILES):
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")
