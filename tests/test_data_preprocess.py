"""Preprocessors: the same features for later files, JSON round trips, schema refusals."""

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepsad_core.data import DataError, ImagePreprocessor, load_dataset, preprocessor_from_dict


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "id": range(40),
            "a": rng.normal(5, 2, 40),
            "b": rng.integers(0, 100, 40),
            "kind": rng.choice(["x", "y"], 40),
            "flag": rng.random(40) > 0.5,
        }
    )
    df.loc[3, "kind"] = None
    return df, load_dataset(df)


def test_later_files_get_exactly_the_same_features(fitted):
    df, ds = fitted
    again = preprocessor_from_dict(json.loads(json.dumps(ds.preprocessor.to_dict())))
    np.testing.assert_array_equal(again.transform(df), ds.X)
    # row order and a subset do not change a row's features
    np.testing.assert_array_equal(again.transform(df.iloc[[5, 1]]), ds.X[[5, 1]])


def test_new_values_are_handled_as_in_training(fitted):
    df, ds = fitted
    new = df.head(2).copy()
    new.loc[0, "a"] = np.nan  # imputed with the training median
    new.loc[1, "kind"] = "never-seen"  # an unseen level: all its one-hot columns 0
    out = ds.preprocessor.transform(new)
    a_median = ds.preprocessor.numeric["a"]
    assert out.shape == (2, ds.X.shape[1])
    ref = ds.preprocessor.transform(df.head(1).assign(a=a_median))
    assert out[0, 0] == pytest.approx(ref[0, 0])
    kind_cols = [i for i, f in enumerate(ds.feature_names) if f.startswith("kind=")]
    assert len(kind_cols) == 3  # x, y and (missing)
    expected_zero = ds.preprocessor.transform(df.head(2))  # compare in encoded units: level absent
    assert not np.allclose(out[1, kind_cols], expected_zero[1, kind_cols])


def test_a_differing_schema_is_refused_naming_the_columns(fitted):
    df, ds = fitted
    with pytest.raises(DataError, match=r"missing column\(s\) 'b'.*unexpected column\(s\) 'c'"):
        ds.preprocessor.transform(df.drop(columns="b").assign(c=1))


def test_text_in_a_numeric_column_names_the_row(fitted):
    df, ds = fitted
    bad = df.head(3).astype({"a": object})
    bad.loc[2, "a"] = "12,5"
    with pytest.raises(DataError, match="column 'a' must be numeric, but row 3 holds '12,5'"):
        ds.preprocessor.transform(bad)


def test_image_preprocessor_modes_and_size():
    pre = ImagePreprocessor((6, 4), channels=3)
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent: white after compositing
    grey = Image.new("L", (4, 6), 128)
    out = pre.transform([rgba, grey])
    assert out.shape == (2, 3, 6, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], 1.0)
    np.testing.assert_allclose(out[1], 128 / 255, atol=1e-6)
    assert preprocessor_from_dict(pre.to_dict()) == pre


# property: whatever bytes or cells arrive, the CSV loader either loads or says DataError


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_csv_loader_never_crashes_on_arbitrary_bytes(data):
    with contextlib.suppress(DataError):
        load_dataset(data, filename="fuzz.csv")


cells = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**6), 10**6).map(str),
    st.just(""),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 4).flatmap(lambda w: st.lists(st.lists(cells, min_size=w, max_size=w), min_size=0, max_size=8)),
    st.sampled_from([",", ";", "\t", "|"]),
)
@example(rows=[["", "0"], ["", "0.0"], ["", "2.225073858507e-311"]], sep=",")  # a denormal spread: constant
def test_csv_loader_never_crashes_on_arbitrary_tables(rows, sep):
    text = "\n".join(sep.join(r) for r in rows)
    try:
        ds = load_dataset(text.encode("utf-8"), filename="fuzz.csv")
    except DataError:
        return
    assert ds.X.dtype == np.float32 and np.isfinite(ds.X).all() and len(ds.X) == len(ds.ids)
