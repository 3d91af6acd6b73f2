"""polars (and pyarrow) input: the same names, checks, column kinds and results as pandas."""

import pickle
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import MultiTaskClassifier, load_model, metrics, save_model
from skmtl.export import onnx_inputs
from skmtl.model_selection import cross_val_predict

pl = pytest.importorskip("polars")

TINY = {
    "max_iter": 3, "random_state": 0, "device": "cpu", "min_frequency": 1, "embedding_dim": 4,
    "expert_layer_sizes": (8,), "tower_layer_sizes": (4,),
}
TIERS = ["low", "mid", "high"]


def make_data(n=300, seed=0):
    """The same rows as polars and as pandas frames: (X_polars, y_polars, X_pandas, y_pandas).

    Columns: a string, a Categorical, an Enum, a bool, a float and an int
    column; two funnel-ordered tasks (``buy`` only after ``click``).
    """
    rng = np.random.RandomState(seed)
    city = rng.choice(["paris", "lyon", "nice", "lille"], size=n).tolist()
    device = rng.choice(["ios", "android", "web"], size=n).tolist()
    tier = rng.choice(TIERS, size=n).tolist()
    member = rng.rand(n) < 0.4
    age = rng.normal(40, 12, size=n)
    visits = rng.poisson(3, size=n)
    click = ((np.array(city) == "paris") | member).astype(np.int64)
    buy = click * (age > 40)
    X_pl = pl.DataFrame({
        "city": pl.Series(city, dtype=pl.String),
        "device": pl.Series(device, dtype=pl.Categorical),
        "tier": pl.Series(tier, dtype=pl.Enum(TIERS)),
        "member": member,
        "age": age,
        "visits": visits,
    })
    X_pd = pd.DataFrame({
        "city": city,
        "device": pd.Categorical(device),
        "tier": pd.Categorical(tier, categories=TIERS),
        "member": member,
        "age": age,
        "visits": visits,
    })
    y_pl = pl.DataFrame({"click": click, "buy": buy})
    y_pd = pd.DataFrame({"click": click, "buy": buy})
    return X_pl, y_pl, X_pd, y_pd


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def fitted(data):
    X_pl, y_pl, _, _ = data
    return MultiTaskClassifier(**TINY).fit(X_pl, y_pl)


def _proba_equal(a, b):
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


# ------------------------------------------------------------------ names
def test_feature_names_and_task_names_as_pandas(data, fitted):
    X_pl, _, X_pd, y_pd = data
    from_pandas = MultiTaskClassifier(**TINY).fit(X_pd, y_pd)
    assert fitted.feature_names_in_.tolist() == X_pl.columns
    np.testing.assert_array_equal(fitted.feature_names_in_, from_pandas.feature_names_in_)
    assert fitted.feature_names_in_.dtype == object
    assert fitted.n_features_in_ == 6
    assert fitted.task_names_.tolist() == ["click", "buy"]


def test_reordered_or_renamed_columns_are_refused_as_by_scikit_learn(data, fitted):
    X_pl, _, _, _ = data
    reordered = X_pl.select(X_pl.columns[::-1])
    with pytest.raises(ValueError, match="Feature names must be in the same order") as ours:
        fitted.predict(reordered)
    # HistGradientBoostingClassifier's check, on the same polars frames, says the same.
    numeric = X_pl.select("age", "visits")
    hgb = HistGradientBoostingClassifier(max_iter=2).fit(numeric, np.arange(len(numeric)) % 2)
    with pytest.raises(ValueError) as theirs:
        hgb.predict(numeric.select("visits", "age"))
    ours_numeric = MultiTaskClassifier(**TINY).fit(numeric, np.arange(len(numeric)) % 2)
    with pytest.raises(ValueError) as same:
        ours_numeric.predict(numeric.select("visits", "age"))
    assert str(same.value) == str(theirs.value)
    assert "same order" in str(ours.value)

    renamed = X_pl.rename({"age": "years"})
    for method in (fitted.predict, fitted.predict_proba):
        with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- years"):
            method(renamed)


def test_numpy_input_after_a_polars_fit_warns_as_after_pandas(fitted):
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        fitted.predict_proba(np.zeros((2, 6)))


# ------------------------------------------------------- same as pandas
def test_predictions_equal_those_from_the_pandas_frame(data, fitted):
    X_pl, y_pl, X_pd, y_pd = data
    from_pandas = MultiTaskClassifier(**TINY).fit(X_pd, y_pd)
    _proba_equal(fitted.predict_proba(X_pl), from_pandas.predict_proba(X_pd))
    with warnings.catch_warnings():  # the two frames are interchangeable, silently
        warnings.simplefilter("error")
        _proba_equal(fitted.predict_proba(X_pd), fitted.predict_proba(X_pl))
        _proba_equal(from_pandas.predict_proba(X_pl), from_pandas.predict_proba(X_pd))
    np.testing.assert_array_equal(fitted.predict(X_pl), from_pandas.predict(X_pd))
    assert fitted.score(X_pl, y_pl) == from_pandas.score(X_pd, y_pd)
    assert fitted.loss_curve_ == from_pandas.loss_curve_
    for ours, theirs in zip(fitted.categories_, from_pandas.categories_):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert ours.tolist() == theirs.tolist()


def test_column_kinds_from_polars_dtypes(fitted):
    # String, Categorical, Enum and Boolean are categorical; floats and ints continuous.
    assert fitted.is_categorical_.tolist() == [True, True, True, True, False, False]
    assert fitted.categories_[2].tolist() == sorted(TIERS)
    assert fitted.categories_[3].tolist() == [False, True]


def test_name_keyed_parameters_take_polars_names(data):
    X_pl, y_pl, X_pd, y_pd = data
    params = dict(
        TINY,
        architecture="mmoe",
        n_experts=2,
        task_weights={"buy": 2.0, "click": 0.5},
        funnel=["click", "buy"],
        class_weight={"click": "balanced", "buy": {0: 1.0, 1: 3.0}},
        categorical_features=["city", "device", "tier", "member", "visits"],
        feature_groups={"user": ["city", "age"], "usage": "visits"},
    )
    ours = MultiTaskClassifier(**params).fit(X_pl, y_pl)
    theirs = MultiTaskClassifier(**params).fit(X_pd, y_pd)
    assert ours.funnel_ == [0, 1]
    assert ours.is_categorical_.tolist() == [True, True, True, True, False, True]
    _proba_equal(ours.predict_proba(X_pl), theirs.predict_proba(X_pd))
    conditional = ours.predict_conditional_proba(X_pl)
    assert list(conditional) == ["click", "buy"]


def test_partial_fit_with_polars_chunks_and_named_categories(data):
    X_pl, y_pl, X_pd, y_pd = data
    ours = MultiTaskClassifier(**TINY)
    theirs = MultiTaskClassifier(**TINY)
    categories = {"city": ["paris", "lyon", "nice", "lille", "brest"]}
    for start in (0, 150):
        rows = slice(start, start + 150)
        ours.partial_fit(X_pl[rows], y_pl[rows], categories=categories if start == 0 else None)
        theirs.partial_fit(
            X_pd.iloc[rows], y_pd.iloc[rows], categories=categories if start == 0 else None
        )
    assert ours.categories_[0].tolist() == sorted(categories["city"])
    assert ours.feature_names_in_.tolist() == X_pl.columns
    _proba_equal(ours.predict_proba(X_pl), theirs.predict_proba(X_pd))


def test_sample_weight_as_a_polars_series(data):
    X_pl, y_pl, X_pd, y_pd = data
    weight = np.linspace(0.5, 2.0, len(X_pl))
    ours = MultiTaskClassifier(**TINY).fit(X_pl, y_pl, sample_weight=pl.Series("w", weight))
    theirs = MultiTaskClassifier(**TINY).fit(X_pd, y_pd, sample_weight=weight)
    _proba_equal(ours.predict_proba(X_pl), theirs.predict_proba(X_pd))
    assert ours.score(X_pl, y_pl, sample_weight=pl.Series("w", weight)) == theirs.score(
        X_pd, y_pd, sample_weight=weight
    )


def test_cross_val_predict_and_metrics_take_polars(data):
    X_pl, y_pl, X_pd, y_pd = data
    y_pl = y_pl.with_columns(pl.when(pl.int_range(pl.len()) % 5 == 0).then(None)
                             .otherwise(pl.col("buy")).alias("buy"))
    y_pd = y_pl.to_pandas(use_pyarrow_extension_array=False)
    cv = KFold(2)
    ours = cross_val_predict(MultiTaskClassifier(**TINY), X_pl, y_pl, cv=cv, method="predict_proba")
    theirs = cross_val_predict(
        MultiTaskClassifier(**TINY), X_pd, y_pd, cv=cv, method="predict_proba"
    )
    _proba_equal(ours, theirs)
    assert metrics.mean_roc_auc_score(y_pl, ours) == metrics.mean_roc_auc_score(y_pd, theirs)


# ------------------------------------------------------------------ y
def test_polars_series_y_is_one_task_named_like_a_pandas_series(data):
    X_pl, y_pl, X_pd, y_pd = data
    named = MultiTaskClassifier(**TINY).fit(X_pl, y_pl["click"])
    assert named.task_names_.tolist() == ["click"]
    assert named.classes_.tolist() == [0, 1]  # 1-D y: one array, as for a pandas Series
    assert named.predict(X_pl).shape == (len(X_pl),)
    assert named.task_names_.tolist() == (
        MultiTaskClassifier(**TINY).fit(X_pd, y_pd["click"]).task_names_.tolist()
    )
    # polars' default name is "": no name, like a pandas Series without one
    unnamed = MultiTaskClassifier(**TINY).fit(X_pl, pl.Series(y_pl["click"].to_list()))
    assert unnamed.task_names_.tolist() == ["task_0"]


@pytest.mark.parametrize(
    "labels, dtype, classes, kinds",
    [
        ([0, 1, None, 1], pl.Int64, [0, 1], "i"),
        ([True, False, None, True], pl.Boolean, [False, True], "b"),
        (["yes", "no", None, "yes"], pl.String, ["no", "yes"], "OU"),
        (["yes", "no", None, "yes"], pl.Categorical, ["no", "yes"], "OU"),
        ([0.0, 1.0, None, 1.0], pl.Float64, [0.0, 1.0], "f"),
    ],
    ids=["int", "bool", "string", "categorical", "float"],
)
def test_null_labels_are_unknown_and_classes_keep_their_type(labels, dtype, classes, kinds):
    n = 40
    values = labels * (n // len(labels))
    X = pl.DataFrame({"x": np.arange(n, dtype=float)})
    y = pl.DataFrame({"task": pl.Series(values, dtype=dtype), "other": [0, 1] * (n // 2)})
    clf = MultiTaskClassifier(**TINY).fit(X, y)
    assert clf.classes_[0].tolist() == classes
    assert clf.classes_[0].dtype.kind in kinds  # integer labels with nulls stay integers
    # the null rows are left out of the task (a null is not a class), and of the score
    with_pandas_nan = pd.DataFrame({
        "task": pd.Series([v if v is not None else np.nan for v in values], dtype=object),
        "other": [0, 1] * (n // 2),
    })
    assert clf.score(X, y) == clf.score(X, with_pandas_nan)


def test_null_in_a_categorical_column_is_the_unknown_category(data, fitted):
    X_pl, _, _, _ = data
    rows = X_pl[:2]
    with_nulls = rows.with_columns(
        pl.Series("city", [None, None], dtype=pl.String),
        pl.Series("device", [None, None], dtype=pl.Categorical),
        pl.Series("tier", [None, None], dtype=pl.Enum(TIERS)),
        pl.Series("member", [None, None], dtype=pl.Boolean),
    )
    unseen = rows.with_columns(
        pl.Series("city", ["oslo", "oslo"]),
        pl.Series("device", ["tv", "tv"], dtype=pl.Categorical),
    )
    codes = fitted.encoder_.transform(fitted._validate_X(with_nulls, reset=False))[0]
    assert (codes == 0).all()  # the unknown row of every categorical column
    unseen_codes = fitted.encoder_.transform(fitted._validate_X(unseen, reset=False))[0]
    assert (unseen_codes[:, :2] == 0).all()
    # a null city predicts as an unseen one
    _proba_equal(
        fitted.predict_proba(with_nulls.with_columns(unseen["city"], unseen["device"])),
        fitted.predict_proba(with_nulls),
    )


def test_null_in_a_continuous_column_is_refused_as_nan(data, fitted):
    X_pl, y_pl, _, _ = data
    with_null = X_pl.with_columns(pl.Series("age", [None] + X_pl["age"].to_list()[1:]))
    with pytest.raises(ValueError, match=r"NaN or infinity in continuous column\(s\) 'age'"):
        fitted.predict(with_null)
    with pytest.raises(ValueError, match=r"NaN or infinity in continuous column\(s\) 'age'"):
        MultiTaskClassifier(**TINY).fit(with_null, y_pl)
    int_null = X_pl.with_columns(pl.Series("visits", [None] + X_pl["visits"].to_list()[1:]))
    with pytest.raises(ValueError, match=r"NaN or infinity in continuous column\(s\) 'visits'"):
        fitted.predict(int_null)


def test_an_integer_column_with_nulls_declared_categorical(data):
    X_pl, y_pl, _, _ = data
    X = X_pl.with_columns(pl.Series("visits", [None] + X_pl["visits"].to_list()[1:]))
    categorical = ["city", "device", "tier", "member", "visits"]
    clf = MultiTaskClassifier(**dict(TINY, categorical_features=categorical)).fit(X, y_pl)
    vocabulary = clf.categories_[5]
    assert vocabulary.tolist() == sorted(set(X_pl["visits"].to_list()[1:]))
    assert all(isinstance(v, (int, np.integer)) for v in vocabulary)
    assert clf.encoder_.transform(clf._validate_X(X[:1], reset=False))[0][0, 4] == 0  # null


def test_dates_are_refused_as_continuous_columns(data):
    X_pl, y_pl, _, _ = data
    X = X_pl.with_columns(pl.lit(date(2020, 1, 1)).alias("day"))
    with pytest.raises(ValueError, match=r"Continuous column\(s\) 'day' hold dates or durations"):
        MultiTaskClassifier(**TINY).fit(X, y_pl)


# ------------------------------------------------------------ plumbing
def test_column_transformer_with_polars_output_in_a_pipeline(data):
    X_pl, y_pl, _, _ = data
    transformer = ColumnTransformer(
        [("num", StandardScaler(), ["age", "visits"]), ("cat", "passthrough", ["city", "device"])]
    ).set_output(transform="polars")
    clf = MultiTaskClassifier(
        **dict(TINY, architecture="moe", n_experts=2, task_weights={"buy": 2.0},
               feature_groups={"where": ["cat__city"], "who": ["num__age", "cat__device"]})
    )
    pipe = make_pipeline(transformer, clf).fit(X_pl, y_pl)
    assert isinstance(transformer.transform(X_pl), pl.DataFrame)
    assert clf.feature_names_in_.tolist() == transformer.get_feature_names_out().tolist()
    assert clf.is_categorical_.tolist() == [False, False, True, True]
    assert clf.task_names_.tolist() == ["click", "buy"]
    assert pipe.predict(X_pl).shape == (len(X_pl), 2)
    assert 0 <= pipe.score(X_pl, y_pl) <= 1


def test_pickle_and_model_file_of_a_polars_fit(data, fitted, tmp_path):
    X_pl, _, _, _ = data
    blob = pickle.dumps(fitted)
    assert b"polars" not in blob  # nothing of polars is kept: loads where polars is absent
    _proba_equal(pickle.loads(blob).predict_proba(X_pl), fitted.predict_proba(X_pl))
    save_model(fitted, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.feature_names_in_.tolist() == X_pl.columns
    _proba_equal(loaded.predict_proba(X_pl), fitted.predict_proba(X_pl))


def test_onnx_inputs_from_a_polars_frame(data, fitted):
    X_pl, _, X_pd, _ = data
    ours, theirs = onnx_inputs(fitted, X_pl), onnx_inputs(fitted, X_pd)
    assert list(ours) == list(theirs) == X_pl.columns
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_user_frames_are_not_modified(data):
    X_pl, y_pl, _, _ = data
    X, y = X_pl.clone(), y_pl.clone()
    clf = MultiTaskClassifier(**TINY).fit(X, y)
    clf.predict_proba(X)
    clf.score(X, y)
    assert X.equals(X_pl) and y.equals(y_pl)
    assert X.schema == X_pl.schema


def test_no_pyarrow_needed(data, monkeypatch):
    # polars' own to_pandas needs pyarrow; the conversion goes through numpy instead.
    def no_pyarrow(*args, **kwargs):
        raise ModuleNotFoundError("pyarrow")

    for cls in (pl.DataFrame, pl.Series):
        monkeypatch.setattr(cls, "to_pandas", no_pyarrow)
        monkeypatch.setattr(cls, "to_arrow", no_pyarrow)
    X_pl, y_pl, _, _ = data
    clf = MultiTaskClassifier(**TINY).fit(X_pl, y_pl)
    clf.predict(X_pl)
    assert clf.feature_names_in_.tolist() == X_pl.columns


def test_a_lazy_frame_is_refused_with_a_hint(data):
    X_pl, y_pl, _, _ = data
    with pytest.raises(TypeError, match=r"LazyFrame .* frame.collect\(\)"):
        MultiTaskClassifier(**TINY).fit(X_pl.lazy(), y_pl)


def test_an_unsupported_integer_width_is_refused(data):
    X_pl, y_pl, _, _ = data
    if not hasattr(pl, "Int128"):
        pytest.skip("this polars has no Int128")
    X = X_pl.with_columns(pl.col("visits").cast(pl.Int128))
    with pytest.raises(TypeError, match="'visits' has polars dtype Int128"):
        MultiTaskClassifier(**TINY).fit(X, y_pl)


def test_pyarrow_tables_keep_their_names_too(data):
    pa = pytest.importorskip("pyarrow")
    _, _, X_pd, y_pd = data
    X = pa.Table.from_pandas(X_pd, preserve_index=False)
    y = pa.table({"click": y_pd["click"], "buy": pa.array([None, *y_pd["buy"][1:]])})
    clf = MultiTaskClassifier(**TINY).fit(X, y)
    assert clf.feature_names_in_.tolist() == X_pd.columns.tolist()
    assert clf.task_names_.tolist() == ["click", "buy"]
    assert clf.classes_[1].dtype.kind == "i"  # integer labels with nulls stay integers
    assert clf.is_categorical_.tolist() == [True, True, True, True, False, False]
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        clf.predict(X.select(X.column_names[::-1]))


def test_importing_skmtl_does_not_import_polars():
    code = "import sys, skmtl, skmtl.export; print('polars' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "False"
