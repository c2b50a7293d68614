"""Scoring with an exported bundle, anywhere: no Streamlit, no pickle, torch only for TorchScript.

>>> from deepsad_core import load_detector            # doctest: +SKIP
>>> detector = load_detector("bundle.zip")           # doctest: +SKIP
>>> detector.decision_function("new_rows.csv")       # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepsad_core.base.threshold import flag
from deepsad_core.bundle.format import (
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_FILE,
    ONNX_FILE,
    SIGNATURE_FILE,
    SUMS_FILE,
    TORCHSCRIPT_FILE,
    read_key,
    signature_matches,
)
from deepsad_core.data.archive import zip_members
from deepsad_core.data.dataset import LoadLimits
from deepsad_core.data.images import IMAGE_SUFFIXES, open_within_limits
from deepsad_core.data.loader import read_any_table
from deepsad_core.data.preprocess import ImagePreprocessor, TabularPreprocessor, preprocessor_from_dict
from deepsad_core.exceptions import BundleError, DataError

__all__ = ["BundleDetector", "BundleError", "load_detector"]

_FILES = (ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE)
_REQUIRED = (ONNX_FILE, MANIFEST_FILE)  # an ensemble's bundle has no TorchScript model
_SCORE_BATCH = 65536


def _read_bundle(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        names = [n for n in BUNDLE_FILES if (path / n).is_file()]
        return {n: (path / n).read_bytes() for n in names}
    if not path.exists():
        raise BundleError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            wanted = set(BUNDLE_FILES)
            return {i.filename: zf.read(i) for i in zf.infolist() if i.filename in wanted and i.file_size < 2**31}
    except zipfile.BadZipFile:
        raise BundleError(f"{path} is neither a bundle folder nor a bundle .zip") from None


def _verify(files: dict[str, bytes], path: Path, verify_key: bytes | None = None) -> dict[str, Any]:
    import hashlib

    if SUMS_FILE not in files or MANIFEST_FILE not in files:
        raise BundleError(f"{path} is not a DeepSAD Studio bundle (no {MANIFEST_FILE} or {SUMS_FILE})")
    if verify_key is not None:
        if SIGNATURE_FILE not in files:
            raise BundleError(f"{path} is not signed, and a key to verify it was given: refused")
        if not signature_matches(files[SUMS_FILE], files[SIGNATURE_FILE], verify_key):
            raise BundleError(
                f"{path}: the signature does not match this key: the bundle was changed, or signed with another key"
            )
    expected = {}
    for line in files[SUMS_FILE].decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        expected[name.strip()] = digest.strip()
    for name in _FILES:
        if name not in files and (name in _REQUIRED or name in expected):
            raise BundleError(f"{path} is incomplete: {name} is missing")
        if name in files and hashlib.sha256(files[name]).hexdigest() != expected.get(name):
            raise BundleError(f"{path} was modified after export: the checksum of {name} does not match")
    try:
        manifest = json.loads(files[MANIFEST_FILE])
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: manifest.json is not valid JSON ({e})") from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("format_version") != BUNDLE_VERSION:
        raise BundleError(
            f"{path} holds format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
            f"this version of deepsad_core reads {BUNDLE_FORMAT!r} version {BUNDLE_VERSION}"
        )
    return manifest


class BundleDetector:
    """A loaded bundle: ``decision_function`` (higher = more anomalous), ``predict`` (1 = anomaly), ``embed``.

    Inputs: a DataFrame, an array, a file path (table, array, image or ZIP of images), a list of image
    paths or PIL images, or a folder of images. Tables are preprocessed with the bundled preprocessor;
    a file whose columns differ from the training schema is refused with the column names. Make one
    with :func:`load_detector`, which verifies the bundle first.

    Parameters
    ----------
    manifest : dict
        The bundle's ``manifest.json``, already verified.
    files : dict of str to bytes
        The bundle's files by name.
    backend : {"onnx", "torchscript"}
        Which exported model scores. TorchScript runs code stored in the file.

    Attributes
    ----------
    threshold_ : float
        Scores above it are flagged (``predict`` gives 1).
    center_ : ndarray
        Deep SAD's centre c in the latent space.
    input_shape_ : tuple of int
        The model input's shape per sample (after preprocessing, and after the backbone for images).
    preprocessor : TabularPreprocessor or ImagePreprocessor
        What turns raw input into model input, as at training.
    manifest : dict
        Everything the bundle records: schema, threshold, training config, label counts, parity, versions.
    """

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes], backend: str) -> None:
        self.manifest = manifest
        self.backend = backend
        self.preprocessor: TabularPreprocessor | ImagePreprocessor = preprocessor_from_dict(manifest["preprocessor"])
        self.threshold_ = float(manifest["threshold"]["value"])
        self.center_ = np.asarray(manifest["center"], dtype=np.float32)
        self.input_shape_ = tuple(manifest["input"]["model_input"])
        self._batch = int(manifest.get("score_batch", _SCORE_BATCH))
        if backend == "torchscript" and TORCHSCRIPT_FILE not in files:
            raise BundleError(
                f"this bundle holds no TorchScript model ({manifest.get('detector', {}).get('kind', 'its')} detector "
                "exports to ONNX only); use backend='onnx'"
            )
        if backend == "onnx":
            import onnxruntime as ort

            _refuse_external_data(files[ONNX_FILE])

            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._session = ort.InferenceSession(files[ONNX_FILE], options, providers=["CPUExecutionProvider"])
        elif backend == "torchscript":
            import torch

            with warnings.catch_warnings():  # TorchScript is deprecated upstream, and still what loads anywhere
                warnings.simplefilter("ignore", FutureWarning)
                self._module = torch.jit.load(io.BytesIO(files[TORCHSCRIPT_FILE]), map_location="cpu").eval()
        else:
            raise ValueError(f"backend must be 'onnx' or 'torchscript'; got {backend!r}")

    @property
    def detector_kind(self) -> str:
        """What the bundle was exported from: ``"deepsad"`` or ``"ensemble"``."""
        return "ensemble" if self.manifest["detector"]["kind"] == "deepsad_ensemble" else "deepsad"

    @property
    def kind(self) -> str:
        return self.manifest["input"]["kind"]

    # --- inputs -----------------------------------------------------------------------------------

    def model_input(self, data: Any) -> np.ndarray:
        """Model input for ``data`` (see the class docstring), preprocessed as in training."""
        if self.kind == "tabular":
            return self.preprocessor.transform(self._table(data))
        return self.preprocessor.transform(list(self._images(data)))

    def _table(self, data: Any) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, np.ndarray):
            used = [*self.preprocessor.numeric, *self.preprocessor.categorical]
            if data.ndim != 2 or data.shape[1] != len(used):
                raise DataError(
                    f"an array to score needs shape (rows, {len(used)}) with the columns {used}; got {data.shape}"
                )
            return pd.DataFrame(data, columns=used)
        return read_any_table(data)

    def _images(self, data: Any) -> Iterator[Image.Image]:
        if isinstance(data, np.ndarray):
            pixels = data if data.dtype == np.uint8 else np.round(np.clip(data, 0, 1) * 255).astype(np.uint8)
            if pixels.ndim == 4 and pixels.shape[1] in (1, 3) and pixels.shape[-1] not in (1, 3):
                pixels = pixels.transpose(0, 2, 3, 1)
            for p in pixels:
                yield Image.fromarray(p[..., 0] if p.ndim == 3 and p.shape[-1] == 1 else p)
            return
        if isinstance(data, (str, Path)) and Path(data).suffix.lower() in (".npy", ".npz"):
            from deepsad_core.data.loader import _read_arrays

            yield from self._images(_read_arrays(Path(data), Path(data).name)[0])
            return
        if isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".zip":
            yield from images_in_zip(Path(data))[1]
            return
        items = list(data) if isinstance(data, (list, tuple)) else [data]
        if items and all(isinstance(p, Image.Image) for p in items):
            yield from items
            return
        paths = [Path(p) for p in items]
        if len(paths) == 1 and paths[0].is_dir():
            paths = sorted(p for p in paths[0].rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for p in paths:
            yield _open_image(p.read_bytes(), str(p))

    # --- scoring ----------------------------------------------------------------------------------

    def _run(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if X.shape[1:] != self.input_shape_:
            raise DataError(f"model input has shape {X.shape[1:]}, the bundle expects {self.input_shape_}")
        scores, latents = [], []
        for s in range(0, len(X), self._batch):
            batch = np.ascontiguousarray(X[s : s + self._batch], dtype=np.float32)
            if self.backend == "onnx":
                score, latent = self._session.run(["score", "latent"], {"input": batch})
            else:
                import torch

                with torch.inference_mode():
                    score, latent = (t.numpy() for t in self._module(torch.from_numpy(batch)))
            scores.append(score)
            latents.append(latent)
        return np.concatenate(scores).astype(np.float64), np.concatenate(latents)

    def score_model_input(self, X: np.ndarray) -> np.ndarray:
        """Scores of already preprocessed model input (what :meth:`model_input` returns)."""
        return self._run(X)[0]

    def decision_function(self, data: Any) -> np.ndarray:
        """Anomaly scores, higher = more anomalous; ``manifest["detector"]["score"]`` says what they mean and
        their range (the ensemble's lie in [e^-10, e^10])."""
        return self._run(self.model_input(data))[0]

    def predict(self, data: Any) -> np.ndarray:
        """1 = anomaly (score above ``threshold_``), 0 = normal."""
        return flag(self.decision_function(data), self.threshold_)

    def embed(self, data: Any) -> np.ndarray:
        """Latent vectors ``phi(x)``."""
        return self._run(self.model_input(data))[1]

    def explain(self, data: Any, baseline: np.ndarray | None = None) -> np.ndarray:
        """Attributions of each sample's score, shaped like its model input: how much the score falls when
        a feature (or an image's patch) is set to ``baseline`` (model input; default: the median of the
        given samples' model input, as the bundle holds no training data)."""
        from deepsad_core.model.explain import attributions

        X = self.model_input(data)
        reference = np.median(X, axis=0) if baseline is None else np.asarray(baseline, dtype=np.float32)
        return attributions(self.score_model_input, X, reference.astype(np.float32))

    def label_free_scores(self, data: Any = None) -> np.ndarray:
        """Not in a bundle: it holds the detector's fused score only (the label-free members' scores stay with
        the project that trained it). Raises :class:`BundleError`."""
        raise BundleError("a bundle holds the detector's score only; label-free scores stay with its project")

    def info(self) -> dict[str, Any]:
        """What the bundle says about itself (the manifest without the preprocessor's arrays)."""
        return {k: v for k, v in self.manifest.items() if k not in ("preprocessor", "center")}


def _external_tensors(graph: Any) -> list[str]:
    """Names of the tensors of ``graph`` (and its subgraphs) whose data lives in files outside it."""
    import onnx

    outside = [t.name for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for node in graph.node:
        for attribute in node.attribute:
            tensors = [attribute.t] if attribute.HasField("t") else list(attribute.tensors)
            outside += [t.name for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                outside += _external_tensors(sub)
    return outside


def _refuse_external_data(model: bytes) -> None:
    """A bundle's graph must hold all its weights: one that points at files elsewhere (``external
    data``) could read any file on the machine into the model."""
    if b"location" not in model:  # external data must name its file under the key "location": none here
        return
    import onnx  # parsing takes a second of imports: only for a graph that may point outside

    try:
        proto = onnx.load_model_from_string(model)
    except Exception as e:  # a graph that does not parse is not run
        raise BundleError(f"model.onnx is not a readable ONNX graph ({type(e).__name__})") from None
    outside = _external_tensors(proto.graph)
    if outside:
        raise BundleError(
            f"model.onnx refers to data outside the bundle (external data for {len(outside)} tensor(s), e.g. "
            f"'{outside[0]}'): refused; a bundle holds all its weights"
        )


def _open_image(data: bytes, name: str) -> Image.Image:
    """An image file, opened lazily under the loader's per-image limits, or ``DataError`` naming it."""
    try:
        return open_within_limits(data, LoadLimits())
    except (OSError, ValueError) as e:
        raise DataError(f"{name} is not a usable image: {e}") from None


def images_in_zip(path: Path) -> tuple[list[str], list[Image.Image]]:
    """The member names and the (lazily opened) images of a ZIP, under the loader's limits (bombs, odd
    names); the archive is read once."""
    members = list(zip_members(path.read_bytes(), path.name, LoadLimits(), IMAGE_SUFFIXES))
    return [name for name, _ in members], [_open_image(data, name) for name, data in members]


def load_detector(
    path: str | Path, backend: str = "onnx", verify_key: bytes | str | Path | None = None
) -> BundleDetector:
    """Load a bundle folder or ``.zip`` after verifying every file's checksum; never unpickles.

    With ``verify_key`` (the key's bytes, or a key file's path) the bundle must also carry a
    ``SIGNATURE`` made with that key: checksums alone catch corruption, a signature catches tampering.
    The ``"torchscript"`` backend runs code stored in the file; use it only for bundles you trust.
    """
    path = Path(path)
    key = verify_key if verify_key is None or isinstance(verify_key, bytes) else read_key(verify_key)
    files = _read_bundle(path)
    return BundleDetector(_verify(files, path, key), files, backend)
