"""Scoring on Apache Spark: the same scores as one process, and the same refusals."""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def _spark_missing() -> str | None:
    """Why Spark cannot run here, if it cannot: no pyspark, or no Java for its JVM."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is an optional extra (pip install pyspark)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Spark needs Java 17 and none is installed (apt-get install -y openjdk-17-jre-headless)"
    return None


if (_why := _spark_missing()) is not None:
    if os.environ.get("DEEPSAD_REQUIRE_SPARK"):  # CI: a missing Spark is a failure, not a skip
        pytest.fail(_why, pytrace=False)
    pytest.skip(_why, allow_module_level=True)

from deepsad_core import DeepSAD, load_detector  # noqa: E402
from deepsad_core.bundle.spark import score_spark  # noqa: E402
from deepsad_core.bundle.write import export_bundle  # noqa: E402
from deepsad_core.data import DataError, load_dataset  # noqa: E402

pytestmark = pytest.mark.slow  # Spark: a JVM per session


@pytest.fixture(scope="module")
def table_and_bundle(tmp_path_factory):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": [f"r{i}" for i in range(400)], "a": rng.normal(size=400),
                       "b": rng.random(400) * 1000, "kind": rng.choice(["x", "y"], 400)})  # fmt: skip
    ds = load_dataset(df)
    model = DeepSAD(epochs=3, ae_epochs=2, lr=1e-3).fit(ds.X)
    out = tmp_path_factory.mktemp("b") / "table.zip"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X)
    return df, out


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = SparkSession.builder.master("local[2]").appName("deepsad tests").getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_scores_equal_the_single_process_path(spark, table_and_bundle):
    df, bundle = table_and_bundle
    scored = score_spark(spark.createDataFrame(df).repartition(3), bundle).toPandas().set_index("id").loc[df["id"]]
    single = load_detector(bundle).decision_function(df)
    assert np.max(np.abs(scored["score"].to_numpy() - single) / np.abs(single)) <= 1e-5
    np.testing.assert_array_equal(scored["anomaly"], (single > load_detector(bundle).threshold_).astype(int))
    assert list(scored.columns) == ["a", "b", "kind", "score", "anomaly"]


def test_wrong_columns_are_refused_on_the_driver_naming_them(spark, table_and_bundle):
    df, bundle = table_and_bundle
    with pytest.raises(DataError, match=r"missing column\(s\) 'b'; unexpected column\(s\) 'c'"):
        score_spark(spark.createDataFrame(df.rename(columns={"b": "c"})), bundle)


def test_the_cli_scores_csv_files_into_parquet_and_names_a_bad_row(table_and_bundle, tmp_path):
    df, bundle = table_and_bundle
    folder = tmp_path / "in"
    folder.mkdir()
    df.iloc[:200].to_csv(folder / "part1.csv", index=False)
    df.iloc[200:].to_csv(folder / "part2.csv", index=False)
    out = tmp_path / "scores.parquet"
    cli = [sys.executable, "-m", "deepsad_core", "score", str(bundle), str(folder), "--out", str(out),
           "--engine", "spark", "--master", "local[1]"]  # fmt: skip
    result = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    written = pd.read_parquet(out).set_index("id").loc[df["id"]]
    single = load_detector(bundle).decision_function(df)
    assert np.max(np.abs(written["score"].to_numpy() - single) / np.abs(single)) <= 1e-5
    bad = df.astype({"b": object})
    bad.loc[5, "b"] = "n/a?"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    cli[5], cli[7] = str(tmp_path / "bad.csv"), str(tmp_path / "bad-scores.parquet")
    result = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'b'" in result.stderr, result.stderr[-2000:]
