"""Bundles: the exported networks score like the live model; tampering and other schemas are refused."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepsad_core import DeepSAD, load_detector
from deepsad_core.base.threshold import ThresholdChoice
from deepsad_core.bundle.read import BundleError
from deepsad_core.bundle.write import export_bundle
from deepsad_core.data import DataError, load_dataset
from deepsad_core.exceptions import OutputExistsError


@pytest.fixture(scope="module")
def table_bundle(tmp_path_factory):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": [f"r{i}" for i in range(200)], "a": rng.normal(size=200), "b": rng.random(200),
                       "kind": rng.choice(["x", "y"], 200)})  # fmt: skip
    ds = load_dataset(df)
    model = DeepSAD(epochs=3, ae_epochs=2, lr=1e-3).fit(ds.X)
    out = tmp_path_factory.mktemp("b") / "table.zip"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X, info={"round": 0})
    return df, ds, model, out


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory):
    rng = np.random.default_rng(1)
    pixels = (rng.random((60, 28, 28)) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "imgs.npz"
    np.savez(path, X=pixels)
    ds = load_dataset(path)
    model = DeepSAD(epochs=2, ae_epochs=1, batch_size=16).fit(ds.X)
    out = tmp_path_factory.mktemp("b") / "images"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X)
    return pixels, ds, model, out


def _max_rel(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3 * np.abs(b).mean())))


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_table_bundle_scores_like_the_live_model(table_bundle, backend):
    df, ds, model, out = table_bundle
    detector = load_detector(out, backend)
    assert _max_rel(detector.decision_function(df), model.decision_function(ds.X)) <= 1e-4
    np.testing.assert_allclose(detector.embed(df), model.embed(ds.X), atol=1e-5)
    assert detector.threshold_ == pytest.approx(model.threshold_)
    np.testing.assert_array_equal(detector.predict(df), model.predict(ds.X))


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_image_bundle_scores_like_the_live_model(image_bundle, backend):
    pixels, ds, model, out = image_bundle
    detector = load_detector(out, backend)
    assert _max_rel(detector.decision_function(pixels), model.decision_function(ds.X)) <= 1e-4


def test_image_bundle_refuses_a_bomb_naming_the_file(image_bundle, tmp_path):
    *_, out = image_bundle
    Image.new("L", (8000, 8000)).save(tmp_path / "flat.png")  # 60 KB that decode to 64 MB
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "fine.png")
    with pytest.raises(DataError, match=r"flat.png is not a usable image: 8000x8000 pixels .* decompression bomb"):
        load_detector(out).decision_function([tmp_path / "fine.png", tmp_path / "flat.png"])


def test_manifest_records_what_a_user_needs(table_bundle):
    *_, out = table_bundle
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["SHA256SUMS", "manifest.json", "model.onnx", "model.torchscript.pt"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["parity"]["passed"] and manifest["parity"]["onnx_max_rel_diff"] <= 1e-4
    assert manifest["input"]["columns"] == ["id", "a", "b", "kind"] and manifest["round"] == 0
    assert {"torch", "onnxruntime", "deepsad_core"} <= set(manifest["versions"])
    assert manifest["threshold"]["value"] > 0


def test_a_tampered_bundle_is_refused(table_bundle, tmp_path):
    *_, out = table_bundle
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "manifest.json":
                data = data.replace(b'"threshold"', b'"threshold" ', 1)
            dst.writestr(item, data)
    with pytest.raises(BundleError, match=r"modified after export: the checksum of manifest\.json"):
        load_detector(tampered)


def test_a_bundle_from_elsewhere_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("model.pt", b"something else")
    with pytest.raises(BundleError, match="not a DeepSAD Studio bundle"):
        load_detector(tmp_path / "other.zip")


def test_another_schema_is_refused_naming_the_columns(table_bundle):
    df, *_, out = table_bundle
    with pytest.raises(DataError, match=r"missing column\(s\) 'b'.*unexpected column\(s\) 'c'"):
        load_detector(out).decision_function(df.drop(columns="b").assign(c=1.0))


def test_export_never_touches_a_folder_that_is_not_a_bundle(table_bundle, tmp_path):
    _, ds, model, _ = table_bundle
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    for force in (False, True):
        with pytest.raises(OutputExistsError, match="not a DeepSAD bundle"):
            export_bundle(model, ds.preprocessor, folder, X_sample=ds.X, force=force)
    assert [p.name for p in folder.iterdir()] == ["thesis.txt"]
    assert (folder / "thesis.txt").read_text() == "years of work"
    other = tmp_path / "notes.zip"
    other.write_bytes(b"not a bundle")
    with pytest.raises(OutputExistsError):
        export_bundle(model, ds.preprocessor, other, X_sample=ds.X, force=True)
    assert other.read_bytes() == b"not a bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "notes.zip"]  # no temporary left behind


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_replacing_a_bundle_needs_force(table_bundle, tmp_path, name):
    _, ds, model, _ = table_bundle
    out = tmp_path / name
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X, threshold=ThresholdChoice(1.0, "m", ""))
    with pytest.raises(OutputExistsError, match="force"):
        export_bundle(model, ds.preprocessor, out, X_sample=ds.X)
    assert load_detector(out).threshold_ == 1.0
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X, threshold=ThresholdChoice(2.0, "m", ""),
                  force=True)  # fmt: skip
    assert load_detector(out).threshold_ == 2.0
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_bundle_folder_with_a_users_file_in_it_is_not_replaced(table_bundle, tmp_path):
    _, ds, model, _ = table_bundle
    out = tmp_path / "bundle"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a DeepSAD bundle"):
        export_bundle(model, ds.preprocessor, out, X_sample=ds.X, force=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_two_zip_exports_at_once_do_not_share_a_temporary_file(table_bundle, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    df, ds, model, _ = table_bundle
    outs = [tmp_path / "same.zip"] * 2
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda o: export_bundle(model, ds.preprocessor, o, X_sample=ds.X[:50], force=True), outs))
    assert done == [[outs[0]], [outs[0]]]
    assert _max_rel(load_detector(outs[0]).decision_function(df), model.decision_function(ds.X)) <= 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["same.zip"]


def test_parity_tolerates_float32_noise_near_zero_and_catches_a_real_disagreement():
    from deepsad_core.bundle.write import PARITY_RTOL, parity_scale

    live = np.r_[np.zeros(5), np.linspace(0.5, 2.0, 95)]
    noise = live + np.float32(1e-7)  # last-bit float32 noise, also on scores that are exactly 0
    assert np.max(np.abs(noise - live) / parity_scale(live)) <= PARITY_RTOL
    shifted = live * 1.001  # a wrong constant somewhere in the graph
    assert np.max(np.abs(shifted - live) / parity_scale(live)) > PARITY_RTOL


def test_an_exported_graph_that_scores_otherwise_is_refused(table_bundle, tmp_path, monkeypatch):
    import deepsad_core.bundle.write as export
    import deepsad_core.detectors.graphs as graphs

    _, ds, model, _ = table_bundle

    class MissingStep(graphs.ScoringNetwork):  # as if a preprocessing step were left out of the graph
        def forward(self, x):
            return super().forward(x * 0.98)

    monkeypatch.setattr(graphs, "ScoringNetwork", MissingStep)
    with pytest.raises(export.ExportError, match="disagrees with the live model"):
        export_bundle(model, ds.preprocessor, tmp_path / "b.zip", X_sample=ds.X)
    assert list(tmp_path.iterdir()) == []


def test_a_signed_bundle_verifies_and_a_rehashed_tampered_one_is_refused(table_bundle, tmp_path):
    import hashlib

    df, ds, model, _ = table_bundle
    key = b"0123456789abcdef0123456789abcdef"
    out = tmp_path / "signed"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X, sign_key=key)
    assert (out / "SIGNATURE").exists()
    assert load_detector(out, verify_key=key).decision_function(df).shape == (len(df),)
    with pytest.raises(BundleError, match="signature does not match"):
        load_detector(out, verify_key=b"another key, also long enough")
    # an attacker edits the manifest's threshold and recomputes SHA256SUMS: the checksums pass ...
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["threshold"]["value"] = 1e9
    (out / "manifest.json").write_text(json.dumps(manifest))
    sums = "".join(
        f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}\n"
        for n in ("model.onnx", "model.torchscript.pt", "manifest.json")
    )
    (out / "SHA256SUMS").write_text(sums)
    assert load_detector(out).threshold_ == 1e9
    # ... and the signature does not
    with pytest.raises(BundleError, match="signature does not match"):
        load_detector(out, verify_key=key)
    unsigned = tmp_path / "unsigned.zip"
    export_bundle(model, ds.preprocessor, unsigned, X_sample=ds.X)
    with pytest.raises(BundleError, match="not signed"):
        load_detector(unsigned, verify_key=key)


def test_a_graph_pointing_at_data_outside_the_bundle_is_refused(table_bundle, tmp_path):
    import hashlib

    import onnx

    _, ds, model, _ = table_bundle
    out = tmp_path / "external"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X)
    # its weights moved to a file beside it, and the checksums recomputed: loading must not follow the pointer
    graph = onnx.load(str(out / "model.onnx"))
    onnx.save_model(graph, str(out / "model.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    names = ("model.onnx", "model.torchscript.pt", "manifest.json")
    (out / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )
    with pytest.raises(BundleError, match="refers to data outside the bundle"):
        load_detector(out)
