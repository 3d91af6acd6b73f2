"""partial_fit: training from chunks (streams, Parquet files) with one model and one Adam."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_mixed_frame
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, learning_curve

from skmtl import MultiTaskClassifier, metrics

PARAMS = dict(max_iter=8, random_state=0, early_stopping=False, batch_size=128, min_frequency=1)


def _iter_parquet(path, rows):
    pq = pytest.importorskip("pyarrow.parquet")
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def test_streaming_a_parquet_file_in_chunks_matches_fit_on_the_whole(tmp_path):
    pytest.importorskip("pyarrow")
    X, y = make_mixed_frame(n=6000, seed=3)
    train, test = slice(0, 4500), slice(4500, None)
    path = tmp_path / "train.parquet"
    pd.concat([X.iloc[train], y.iloc[train]], axis=1).to_parquet(path, row_group_size=500)

    whole = MultiTaskClassifier(**PARAMS).fit(X.iloc[train], y.iloc[train])

    streamed = MultiTaskClassifier(**PARAMS)
    categories = {"city": [f"c{i}" for i in range(12)], "device": ["android", "ios", "web"]}
    calls = 0
    for epoch in range(PARAMS["max_iter"]):
        for chunk in _iter_parquet(path, rows=1500):
            calls += 1
            Xc, yc = chunk[X.columns], chunk[y.columns]
            if epoch == 0 and not hasattr(streamed, "module_"):
                streamed.partial_fit(Xc, yc, classes=[[0, 1], [0, 1]], categories=categories)
            else:
                streamed.partial_fit(Xc, yc)
    assert streamed.n_iter_ == calls == PARAMS["max_iter"] * 9  # 9 row groups of 500 rows
    whole_auc = metrics.mean_roc_auc_score(y.iloc[test], whole.predict_proba(X.iloc[test]))
    streamed_auc = metrics.mean_roc_auc_score(y.iloc[test], streamed.predict_proba(X.iloc[test]))
    # Measured: fit on the whole 0.9090, 8 passes of partial_fit over the 9 chunks 0.9093.
    assert streamed_auc > whole_auc - 0.01, (whole_auc, streamed_auc)


def test_first_call_declares_classes_and_categories():
    X, y = make_mixed_frame(n=400, seed=0)
    clf = MultiTaskClassifier(**PARAMS)
    # The first chunk has a single class for "buy" and only some cities: fine when declared.
    first = y["buy"] == 0
    clf.partial_fit(
        X[first].iloc[:100], y[first].iloc[:100], classes=[[0, 1], [0, 1]],
        categories={"city": ["c0", "c1", "zzz"]},
    )
    assert clf.classes_[1].tolist() == [0, 1]
    assert clf.categories_[0].tolist() == ["c0", "c1", "zzz"]
    clf.partial_fit(X, y)  # every other city maps to the unknown row
    codes, _ = clf.encoder_.transform(X.iloc[:50])
    assert set(np.unique(codes[:, 0])) <= {0, 1, 2}
    assert np.isfinite(clf.predict_proba(X)[1]).all()


def test_partial_fit_continues_one_optimisation():
    X, y = make_mixed_frame(n=600, seed=1)
    clf = MultiTaskClassifier(**PARAMS).partial_fit(X, y)
    adam = clf.optimizer_
    step = adam.state[adam.param_groups[0]["params"][0]]["step"].item()
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    assert clf.task_loss_curves_.shape == (2, 2)
    new_step = clf.optimizer_.state[clf.optimizer_.param_groups[0]["params"][0]]["step"].item()
    assert new_step == 2 * step  # Adam's step count went on: the same optimiser continued
    # Two partial_fit passes equal fit with max_iter=2 on the same rows (same seed, same order).
    fitted = MultiTaskClassifier(**{**PARAMS, "max_iter": 2, "n_iter_no_change": 5}).fit(X, y)
    assert clf.loss_curve_[0] == pytest.approx(fitted.loss_curve_[0], rel=1e-6)


def test_partial_fit_errors():
    X, y = make_mixed_frame(n=200, seed=2)
    clf = MultiTaskClassifier(**PARAMS)
    with pytest.raises(ValueError, match="only one class"):
        clf.partial_fit(X[y["buy"] == 0], y[y["buy"] == 0])
    clf.partial_fit(X, y, classes=[[0, 1], [0, 1]])
    clf.partial_fit(X, y, classes=[[0, 1], [0, 1]])  # the same classes again: as sklearn allows
    with pytest.raises(ValueError, match="the classes are fixed by the first call"):
        clf.partial_fit(X, y, classes=[[0, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match="categories are taken on the first partial_fit call"):
        clf.partial_fit(X, y, categories={"city": ["c0"]})
    y_bad = y.copy()
    y_bad.loc[0, "buy"] = 7
    with pytest.raises(ValueError, match=r"labels \[7\] that are not among its classes"):
        clf.partial_fit(X, y_bad)
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        clf.partial_fit(X.iloc[:, :4], y)
    with pytest.raises(ValueError, match="not a categorical column"):
        MultiTaskClassifier(**PARAMS).partial_fit(X, y, categories={"age": [1, 2]})


def test_unseen_category_after_the_first_chunk_is_near_the_base_rate():
    X, y = make_mixed_frame(n=3000, seed=4)
    clf = MultiTaskClassifier(**{**PARAMS, "category_dropout": 0.1})
    seen = X["city"].isin([f"c{i}" for i in range(6)]).to_numpy()
    for _ in range(10):
        clf.partial_fit(X[seen], y[seen])
    proba = clf.predict_proba(X[~seen])[0][:, 1]  # cities first seen now
    assert np.isfinite(proba).all()
    assert roc_auc_score(y["click"][~seen], proba) > 0.5


def test_learning_curve_with_incremental_learning_and_missing_labels():
    """learning_curve passes classes=np.unique(y) on every call, NaN (an unknown label) included."""
    X, y = make_mixed_frame(n=400, seed=5)
    y = y.astype(float)
    y.iloc[::7, 1] = np.nan
    assert np.isnan(np.unique(y.to_numpy())).any()
    _, _, test = learning_curve(
        MultiTaskClassifier(**PARAMS), X, y, train_sizes=[0.5, 1.0], cv=KFold(2),
        exploit_incremental_learning=True, scoring=metrics.get_scorer("mean_roc_auc"),
    )
    assert np.isfinite(test).all() and test.shape == (2, 2)
    clf = MultiTaskClassifier(**PARAMS).partial_fit(X, y, classes=np.unique(y.to_numpy()))
    assert [c.tolist() for c in clf.classes_] == [[0.0, 1.0], [0.0, 1.0]]


@pytest.mark.parametrize("continued", ["partial_fit", "warm_start"])
def test_continuing_with_the_tasks_in_another_order_is_refused(continued):
    """Each head would silently learn the other task's labels."""
    X, y = make_mixed_frame(n=300, seed=6)
    clf = MultiTaskClassifier(**PARAMS, warm_start=continued == "warm_start")
    fit = clf.partial_fit if continued == "partial_fit" else clf.fit
    fit(X, y)
    with pytest.raises(ValueError, match=r"y's tasks in the fitted order: fitted \['click', 'buy'\]"):
        fit(X, y[["buy", "click"]])
    fit(X, y)  # the fitted order goes on
    if continued == "partial_fit":
        with pytest.raises(ValueError, match=r"partial_fit: y has 3 task\(s\) but the fitted"):
            fit(X, y.assign(view=y["click"]))


def test_continuing_with_unnamed_or_single_task_y_is_positional():
    """Only a DataFrame of several tasks names them; an array (or one task) is matched by
    position, as after a DataFrame fit an array X is."""
    X, y = make_mixed_frame(n=300, seed=7)
    clf = MultiTaskClassifier(**PARAMS).partial_fit(X, y)
    clf.partial_fit(X, y.to_numpy())
    assert list(clf.task_names_) == ["click", "buy"]  # the fitted names stay (were task_0, ...)
    clf.partial_fit(X, y)
    single = MultiTaskClassifier(**PARAMS).partial_fit(X, y["click"])
    single.partial_fit(X, y["click"].to_numpy())
    single.partial_fit(X, y["click"].rename("renamed"))
    assert single.n_iter_ == 3 and list(single.task_names_) == ["click"]
