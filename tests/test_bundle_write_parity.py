"""Property: the default detector exports with parity on any valid table, and `deepsad score` scores
as the Python API does.

Tables are drawn to stress the float arithmetic of the graph: columns of few distinct values, rows
repeated many times, near-constant columns, values spanning many orders of magnitude and values
that differ only in their last digits. CI runs 200 examples (the ``ci`` profile); elsewhere 25.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepsad_core import DeepSAD, load_detector
from deepsad_core.bundle.write import PARITY_RTOL, export_bundle, parity_scale
from deepsad_core.cli import main as deepsad
from deepsad_core.data import load_dataset
from deepsad_core.detectors.ensemble import DeepSADEnsemble

settings.register_profile("ci", max_examples=200)
settings.register_profile("dev", max_examples=25)
PROFILE = "ci" if os.environ.get("CI") else "dev"

KINDS = ("few_values", "near_constant", "wide_range", "tiny_range", "continuous")


def column(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "few_values":  # a handful of integer levels, most rows on one of them
        levels = rng.integers(-50, 50, rng.integers(2, 6)).astype(float)
        return levels[np.minimum(rng.geometric(0.6, n) - 1, len(levels) - 1)]
    if kind == "near_constant":  # one value and a single row a hair away
        values = np.full(n, rng.normal() * 10.0 ** rng.integers(-3, 4))
        values[rng.integers(n)] += abs(values[0]) * 1e-9 + 1e-12
        return values
    if kind == "wide_range":  # from about 1e-6 to about 1e12
        return np.sign(rng.normal(size=n)) * 10.0 ** rng.uniform(-6, 12, n)
    if kind == "tiny_range":  # values that differ only far behind the decimal point
        return 1000.0 + rng.integers(0, 4, n) * 1e-6
    return rng.normal(size=n) * 10.0 ** rng.integers(-3, 6)


@st.composite
def tables(draw) -> pd.DataFrame:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_distinct = draw(st.integers(5, 120))
    repeats = draw(st.integers(1, 8))  # each distinct row appears up to this many times
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=8))
    base = pd.DataFrame({f"c{j}": column(kind, n_distinct, rng) for j, kind in enumerate(kinds)})
    base["varies"] = rng.integers(0, 3, n_distinct)  # one column the preprocessor keeps, whatever the others
    rows = np.repeat(np.arange(n_distinct), rng.integers(1, repeats + 1, n_distinct))
    return base.iloc[rng.permutation(rows)].reset_index(drop=True)


@settings(settings.get_profile(PROFILE), deadline=None, suppress_health_check=list(HealthCheck))
@given(table=tables())
def test_the_default_detector_exports_with_parity_and_scores_as_the_api(table, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    csv = folder / "table.csv"
    table.to_csv(csv, index=False)
    dataset = load_dataset(csv)
    model = DeepSADEnsemble(deepsad=DeepSAD(epochs=2, ae_epochs=1, batch_size=64)).fit(dataset.X)
    # export_bundle refuses a graph whose scores differ from the live model's beyond the tolerance
    export_bundle(model, dataset.preprocessor, folder / "bundle", X_sample=dataset.X)
    detector = load_detector(folder / "bundle")
    assert detector.manifest["parity"]["onnx_max_rel_diff"] <= PARITY_RTOL
    api = detector.decision_function(table)
    live = model.decision_function(dataset.X)
    assert np.max(np.abs(api - live) / parity_scale(live)) <= PARITY_RTOL
    assert deepsad(["score", str(folder / "bundle"), str(csv), "--out", str(folder / "scores.csv"), "--quiet"]) == 0
    cli = pd.read_csv(folder / "scores.csv")["score"].to_numpy()
    np.testing.assert_allclose(cli, api, rtol=1e-6)  # the command writes what the API returns
    lo, hi = model_bounds()
    assert lo <= api.min() and api.max() <= hi


def model_bounds() -> tuple[float, float]:
    from deepsad_core.detectors.fusion import SCORE_BOUND

    return float(np.exp(-SCORE_BOUND)) * (1 - 1e-6), float(np.exp(SCORE_BOUND)) * (1 + 1e-6)
