"""Funnels (click -> conversion -> ...) at the level of the loss and of the estimator.

Every test checks numbers: the ESMM loss against a hand computation, the
log-space chain against a high-precision reference, measured funnel-violation
fractions with and without the penalty, the negative-downsampling correction
against the generator's true click probability, and so on.
"""

import math
import pickle
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold

from skmtl import MultiTaskClassifier, metrics
from skmtl.datasets import make_ad_funnel
from skmtl.losses import MultiTaskObjective, chain_log_probs

# Small, fast networks: these tests check funnel mechanics, not accuracy.
SMALL = dict(
    expert_layer_sizes=(16,),
    tower_layer_sizes=(8,),
    n_experts=2,
    batch_size=256,
    learning_rate_init=5e-3,
    early_stopping=False,
    device="cpu",
)
FUNNEL = ("click", "conversion")


@pytest.fixture(scope="module")
def funnel_data():
    """2,000 impressions, many clicks (CTR 30 %) and conversions (CVR 40 %), both label styles."""
    zero = make_ad_funnel(2_000, ctr=0.3, cvr=0.4, n_users=300, n_items=100, random_state=0)
    nan = make_ad_funnel(
        2_000, ctr=0.3, cvr=0.4, n_users=300, n_items=100, conversion_when_not_clicked="nan",
        random_state=0,
    )
    return zero.data, zero.target, nan.target


@pytest.fixture(scope="module")
def esmm_model(funnel_data):
    X, y, _ = funnel_data
    return MultiTaskClassifier("mmoe", funnel=FUNNEL, max_iter=5, random_state=0, **SMALL).fit(X, y)


# ------------------------------------------------------------------ the loss


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_esmm_loss_equals_hand_computation():
    a = [0.3, -1.2, 2.0, 0.0, -0.7]  # click logits
    b = [1.1, 0.4, -2.5, 0.9, -0.1]  # post-click conversion logits
    y_ctr = [1, 0, 1, 1, 0]
    y_cvr = [1, 0, 0, 1, 0]  # conversion only after a click
    Y1 = y_ctr
    Y2 = [c * v for c, v in zip(y_ctr, y_cvr)]  # impression-space conversion label

    ctr_terms, ctcvr_terms = [], []
    for ai, bi, y1, y2 in zip(a, b, Y1, Y2):
        p_ctr = _sigmoid(ai)
        p_ctcvr = _sigmoid(ai) * _sigmoid(bi)
        ctr_terms.append(-(y1 * math.log(p_ctr) + (1 - y1) * math.log(1 - p_ctr)))
        ctcvr_terms.append(-(y2 * math.log(p_ctcvr) + (1 - y2) * math.log(1 - p_ctcvr)))
    expected_ctr, expected_ctcvr = np.mean(ctr_terms), np.mean(ctcvr_terms)

    objective = MultiTaskObjective(n_outputs=[1, 1], funnel=[0, 1])
    logits = [torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)]
    targets = torch.tensor(np.column_stack([Y1, Y2]))
    total, losses = objective(logits, targets)
    np.testing.assert_allclose(losses.numpy(), [expected_ctr, expected_ctcvr], rtol=1e-12)
    assert total.item() == pytest.approx(expected_ctr + expected_ctcvr, rel=1e-12)
    # For these numbers: 0.40818 (pCTR) + 0.45317 (pCTCVR).
    assert total.item() == pytest.approx(0.86135, abs=1e-5)


def test_independent_loss_and_penalty_equal_hand_computation():
    a = [0.3, -1.2, 2.0, 0.0]  # impression-space click logits
    c = [1.1, -2.0, 2.5, -0.5]  # impression-space conversion logits: rows 0 and 2 violate
    Y1, Y2 = [1, 0, 1, 0], [1, 0, 0, 0]

    def bce(z, y):
        p = _sigmoid(z)
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    expected_losses = [
        np.mean([bce(z, y) for z, y in zip(a, Y1)]),
        np.mean([bce(z, y) for z, y in zip(c, Y2)]),
    ]
    violation = np.mean([max(_sigmoid(ci) - _sigmoid(ai), 0.0) for ai, ci in zip(a, c)])
    logits = [torch.tensor(a, dtype=torch.float64), torch.tensor(c, dtype=torch.float64)]
    targets = torch.tensor(np.column_stack([Y1, Y2]))
    for penalty in (0.0, 3.0):
        objective = MultiTaskObjective(
            n_outputs=[1, 1], funnel=[0, 1], funnel_mode="independent", funnel_penalty=penalty
        )
        total, losses = objective(logits, targets)
        np.testing.assert_allclose(losses.numpy(), expected_losses, rtol=1e-12)
        expected_total = sum(expected_losses) + penalty * violation
        assert total.item() == pytest.approx(expected_total, rel=1e-12)
    # Rows 0 and 2: (0.75026 - 0.57444 + 0.92414 - 0.88080) / 4 = 0.05479.
    assert violation == pytest.approx(0.05479, abs=1e-5)


# --------------------------------------------- saturated logits, in log space

GRID = [-200.0, -100.0, -50.0, -30.0, -10.0, -1.0, 0.0, 1.0, 10.0, 30.0, 50.0, 100.0, 200.0]
# 1 - P can be as small as 3 e^-200 ~ 1e-87, so 50 significant digits of log(1 - P)
# need about 90 more digits of working precision; 250 leaves ample room.
PRECISION = 250


def _reference_chain(logit_rows):
    """log P and log(1 - P) of P = prod_j sigmoid(a_j), in 250-digit decimal arithmetic.

    Computed from the definitions (no log-space identity) and rounded to float64.
    Also the gradients of log P and log(1 - P) with respect to each a_j:
    d log P / d a_j = 1 - sigmoid(a_j) and d log(1 - P) / d a_j = -P / (1 - P) (1 - sigmoid(a_j)).
    """
    log_p, log_q, grad_p, grad_q = [], [], [], []
    with localcontext() as context:
        context.prec = PRECISION
        one = Decimal(1)
        for row in logit_rows:
            sig = [one / (one + (-Decimal(float(a))).exp()) for a in row]
            p = one
            for s in sig:
                p *= s
            q = one - p
            log_p.append(float(p.ln()))
            log_q.append(float(q.ln()))
            grad_p.append([float(one - s) for s in sig])
            grad_q.append([float(-(p / q) * (one - s)) for s in sig])
    return np.array(log_p), np.array(log_q), np.array(grad_p), np.array(grad_q)


# float32 cannot hold magnitudes below its smallest normal number with full relative
# precision (e.g. log P = -2 e^-200 underflows to 0): those are compared absolutely.
ATOL = float(torch.finfo(torch.float32).tiny)


def _grid(n_steps, values=GRID):
    mesh = np.meshgrid(*[values] * n_steps, indexing="ij")
    return np.column_stack([m.ravel() for m in mesh])


def test_chain_log_probs_match_high_precision_reference_at_saturated_logits():
    rows = _grid(2)  # 169 pairs (a, b) up to +-200
    a = torch.tensor(rows[:, 0], dtype=torch.float32, requires_grad=True)
    b = torch.tensor(rows[:, 1], dtype=torch.float32, requires_grad=True)
    (_, _), (log_p, log_q) = chain_log_probs([a, b])
    ref_p, ref_q, ref_grad_p, ref_grad_q = _reference_chain(rows)

    assert log_p.dtype == torch.float32
    assert torch.isfinite(log_p).all() and torch.isfinite(log_q).all()
    np.testing.assert_allclose(log_p.detach().numpy(), ref_p, rtol=5e-6, atol=ATOL)
    np.testing.assert_allclose(log_q.detach().numpy(), ref_q, rtol=5e-6, atol=ATOL)

    # Gradients of log P and of log(1 - P), one row at a time (sum over rows).
    (grad_a, grad_b) = torch.autograd.grad(log_p.sum(), [a, b], retain_graph=True)
    np.testing.assert_allclose(
        np.column_stack([grad_a, grad_b]), ref_grad_p, rtol=1e-5, atol=ATOL
    )
    (grad_a, grad_b) = torch.autograd.grad(log_q.sum(), [a, b])
    assert torch.isfinite(grad_a).all() and torch.isfinite(grad_b).all()
    np.testing.assert_allclose(
        np.column_stack([grad_a, grad_b]), ref_grad_q, rtol=1e-5, atol=ATOL
    )


def test_esmm_objective_is_finite_and_exact_at_saturated_logits():
    pairs = _grid(2)
    # Each logit pair with the three possible label pairs (no click; click, no
    # conversion; click and conversion), as impression-space targets.
    labels = np.array([[0, 0], [1, 0], [1, 1]])
    rows = np.repeat(pairs, len(labels), axis=0)
    targets = np.tile(labels, (len(pairs), 1))
    a = torch.tensor(rows[:, 0], dtype=torch.float32, requires_grad=True)
    b = torch.tensor(rows[:, 1], dtype=torch.float32, requires_grad=True)
    total, losses = MultiTaskObjective(n_outputs=[1, 1], funnel=[0, 1])(
        [a, b], torch.tensor(targets)
    )
    click_grads = torch.autograd.grad(losses[0], [a, b], retain_graph=True)
    conversion_grads = torch.autograd.grad(losses[1], [a, b], retain_graph=True)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()

    ref_click_p, ref_click_q, click_grad_p, click_grad_q = _reference_chain(rows[:, :1])
    ref_p, ref_q, grad_p, grad_q = _reference_chain(rows)
    y1, y2 = targets[:, :1], targets[:, 1:]
    expected_click = -np.mean(np.where(y1 == 1, ref_click_p[:, None], ref_click_q[:, None]))
    expected_conversion = -np.mean(np.where(y2 == 1, ref_p[:, None], ref_q[:, None]))
    np.testing.assert_allclose(
        losses.detach().numpy(), [expected_click, expected_conversion], rtol=1e-5
    )
    # Each task's mean loss, differentiated per row: d loss_t / d (a_i, b_i) * n_rows.
    n = len(rows)
    np.testing.assert_allclose(
        click_grads[0].numpy() * n,
        -np.where(y1 == 1, click_grad_p, click_grad_q)[:, 0],
        rtol=1e-5,
        atol=ATOL,
    )
    assert not click_grads[1].any()  # the click loss does not read the conversion logit
    np.testing.assert_allclose(
        np.column_stack(conversion_grads) * n,
        -np.where(y2 == 1, grad_p, grad_q),
        rtol=1e-5,
        atol=ATOL,
    )


def test_rare_conversions_keep_relative_precision():
    # pCTCVR of 1e-5 to 1e-9 are common in ads (CTR 1 %, CVR 0.1 %). The loss of a
    # non-converting impression is -log(1 - P) ~ P, and its gradient ~ P as well: both
    # must keep their relative precision, not only an absolute one of ~1e-7.
    # (Measured with a log(1 - P) = logsumexp(-a, -b, -a - b) - softplus(-a) -
    # softplus(-b) implementation: value 9 % off at (-1, -10), gradient 42 % off at
    # (-7, -7), and at (-10, -10) a gradient of +7e-7 instead of -2e-9: wrong sign.)
    rows = np.array([[-1.0, -10.0], [-5.0, -5.0], [-7.0, -7.0], [-10.0, -10.0], [-3.0, -12.0]])
    a = torch.tensor(rows[:, 0], dtype=torch.float32, requires_grad=True)
    b = torch.tensor(rows[:, 1], dtype=torch.float32, requires_grad=True)
    (_, _), (log_p, log_q) = chain_log_probs([a, b])
    ref_p, ref_q, _, ref_grad_q = _reference_chain(rows)
    assert ref_q[3] == pytest.approx(-2.0609e-9, rel=1e-4)
    np.testing.assert_allclose(log_p.detach().numpy(), ref_p, rtol=5e-6)
    np.testing.assert_allclose(log_q.detach().numpy(), ref_q, rtol=1e-5)
    grads = torch.autograd.grad(log_q.sum(), [a, b])
    np.testing.assert_allclose(np.column_stack(grads), ref_grad_q, rtol=1e-5)


def test_naive_log1p_of_exp_breaks_where_the_chain_does_not():
    # Why chain_log_probs exists: log(1 - P) computed as log1p(-exp(log P)) in float32
    # is -inf as soon as P rounds to 1, i.e. for every pair of logits >= 30 here
    # (already from about 17: 1 - P < 2^-24), and its gradient is NaN there.
    rows = _grid(2)
    a = torch.tensor(rows[:, 0], dtype=torch.float32, requires_grad=True)
    b = torch.tensor(rows[:, 1], dtype=torch.float32, requires_grad=True)
    (_, _), (log_p, log_q) = chain_log_probs([a, b])
    naive = torch.log1p(-torch.exp(log_p))
    saturated = torch.tensor((rows[:, 0] >= 30) & (rows[:, 1] >= 30))
    assert saturated.sum() == 16
    assert torch.isneginf(naive[saturated]).all()
    (naive_grad_a,) = torch.autograd.grad(naive.sum(), [a])
    assert not torch.isfinite(naive_grad_a[saturated]).any()
    # The log-space version is finite there and equals log(2 e^-30 + e^-60) ~ -29.3 at (30, 30).
    assert torch.isfinite(log_q[saturated]).all()
    at_30 = int(np.flatnonzero((rows[:, 0] == 30) & (rows[:, 1] == 30))[0])
    assert log_q[at_30].item() == pytest.approx(math.log(2 * math.exp(-30)), rel=1e-6)


def test_three_step_chain_matches_reference():
    values = [-200.0, -30.0, -1.0, 0.0, 2.0, 30.0, 200.0]
    rows = _grid(3, values)  # 343 triples
    logits = [
        torch.tensor(rows[:, j], dtype=torch.float32, requires_grad=True) for j in range(3)
    ]
    chain = chain_log_probs(logits)
    for k in range(3):
        ref_p, ref_q, _, ref_grad_q = _reference_chain(rows[:, : k + 1])
        log_p, log_q = chain[k]
        np.testing.assert_allclose(log_p.detach().numpy(), ref_p, rtol=5e-6, atol=ATOL)
        np.testing.assert_allclose(log_q.detach().numpy(), ref_q, rtol=5e-6, atol=ATOL)
        grads = torch.autograd.grad(log_q.sum(), logits[: k + 1], retain_graph=True)
        np.testing.assert_allclose(
            np.column_stack(grads), ref_grad_q, rtol=1e-5, atol=ATOL
        )


# ------------------------------------------------------------------ penalty


def _loyal_segment_data(n, seed):
    """A funnel in which half the users ("loyal") convert after 98 % of their clicks.

    There P(conversion) is 0.98 P(click), so two independently estimated heads
    often cross.
    """
    rng = np.random.RandomState(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    loyal = rng.rand(n) < 0.5
    p_click = 1 / (1 + np.exp(-(-1.0 + 1.2 * x1 + 0.5 * x2)))
    p_cvr = np.where(loyal, 0.98, 1 / (1 + np.exp(-(-1.5 + 0.8 * x2))))
    click = rng.rand(n) < p_click
    conversion = click & (rng.rand(n) < p_cvr)
    X = pd.DataFrame(
        {"segment": pd.Categorical(np.where(loyal, "loyal", "regular")), "x1": x1, "x2": x2}
    )
    y = pd.DataFrame({"click": click.astype(int), "conversion": conversion.astype(int)})
    return X, y


def _violation_fraction(clf, X):
    proba = clf.predict_proba(X)
    return float(np.mean(proba[1][:, 1] > proba[0][:, 1]))


def test_penalty_removes_funnel_violations_of_independent_heads():
    X, y = _loyal_segment_data(3_000, seed=0)
    X_test, _ = _loyal_segment_data(2_000, seed=1)
    params = dict(funnel=FUNNEL, funnel_mode="independent", max_iter=15, random_state=0, **SMALL)
    before = _violation_fraction(MultiTaskClassifier("mmoe", **params).fit(X, y), X_test)
    after = _violation_fraction(
        MultiTaskClassifier("mmoe", funnel_penalty=30.0, **params).fit(X, y), X_test
    )
    # Measured: P(conversion) > P(click) on 26.9 % of held-out rows without the
    # penalty (seeds 1-3 of the model: 24 %, 10 %, 26 %), 0.0 % with funnel_penalty=30
    # (at most 0.05 % over seeds 0-3).
    assert before >= 0.05, f"without penalty: {before:.2%} violations, expected >= 5 %"
    assert after <= 0.01, f"with penalty: {after:.2%} violations (before: {before:.2%})"


def test_esmm_never_violates_the_funnel():
    X, y = _loyal_segment_data(3_000, seed=0)
    X_test, _ = _loyal_segment_data(2_000, seed=1)
    clf = MultiTaskClassifier("mmoe", funnel=FUNNEL, max_iter=15, random_state=0, **SMALL)
    proba = clf.fit(X, y).predict_proba(X_test)
    assert np.all(proba[1][:, 1] <= proba[0][:, 1])
    # In the loyal segment the model learns that nearly every click converts.
    cvr = clf.predict_conditional_proba(X_test)["conversion"]
    loyal = (X_test["segment"] == "loyal").to_numpy()
    assert cvr[loyal].mean() > 0.8 > 0.3 > cvr[~loyal].mean()


# ------------------------------------------------ the NaN-vs-zero convention


def test_zero_and_nan_conversion_labels_are_the_same_funnel(funnel_data):
    X, y_zero, y_nan = funnel_data
    assert y_nan["conversion"].isna().sum() == (y_zero["click"] == 0).sum() > 1_000
    fit = lambda y: MultiTaskClassifier(
        "mmoe", funnel=FUNNEL, max_iter=3, random_state=0, **SMALL
    ).fit(X, y)
    from_zero, from_nan = fit(y_zero), fit(y_nan)
    for p_zero, p_nan in zip(from_zero.predict_proba(X), from_nan.predict_proba(X)):
        np.testing.assert_array_equal(p_zero, p_nan)
    np.testing.assert_array_equal(from_zero.loss_curve_, from_nan.loss_curve_)

    # score and skmtl.metrics scorers read both label styles alike.
    scorers = [
        metrics.get_scorer("mean_roc_auc"),
        metrics.get_scorer("neg_mean_log_loss"),
        metrics.make_task_scorer("roc_auc", "conversion"),
    ]
    values = {}
    for name, y in (("zero", y_zero), ("nan", y_nan)):
        values[name] = [from_zero.score(X, y)] + [scorer(from_zero, X, y) for scorer in scorers]
    assert values["zero"] == values["nan"]
    # The conversion AUC is over all 2,000 impressions, not only the clicked ones.
    proba = from_zero.predict_proba(X)[1][:, 1]
    from sklearn.metrics import roc_auc_score

    assert values["nan"][3] == pytest.approx(roc_auc_score(y_zero["conversion"], proba))


def test_conversion_without_click_is_an_error(funnel_data):
    X, y, _ = funnel_data
    bad = y.copy()
    row = int(np.flatnonzero(bad["click"].to_numpy() == 0)[0])
    bad.loc[row, "conversion"] = 1
    clf = MultiTaskClassifier("mmoe", funnel=FUNNEL, max_iter=1, random_state=0, **SMALL)
    with pytest.raises(ValueError, match="earlier step"):
        clf.fit(X, bad)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="earlier step"):
        clf.score(X, bad)
    with pytest.raises(ValueError, match="earlier step"):
        metrics.get_scorer("mean_roc_auc")(clf, X, bad)
    # Without a funnel the same labels are two unrelated tasks: no error.
    MultiTaskClassifier("mmoe", max_iter=1, random_state=0, **SMALL).fit(X, bad)


def test_three_step_funnel(funnel_data):
    X, y, _ = funnel_data
    rng = np.random.RandomState(0)
    # click -> cart -> purchase: the purchase happens only after a cart.
    cart = y["click"].to_numpy() * (rng.rand(len(y)) < 0.5)
    purchase = np.where(cart == 1, (rng.rand(len(y)) < 0.6).astype(float), np.nan)
    y3 = pd.DataFrame({"click": y["click"], "cart": cart, "purchase": purchase})
    funnel = ("click", "cart", "purchase")
    clf = MultiTaskClassifier("mmoe", funnel=funnel, max_iter=5, random_state=0, **SMALL).fit(X, y3)
    proba = [p[:, 1] for p in clf.predict_proba(X)]
    conditional = clf.predict_conditional_proba(X)
    assert list(conditional) == list(funnel)
    assert np.all(proba[0] >= proba[1]) and np.all(proba[1] >= proba[2])
    np.testing.assert_allclose(proba[1], conditional["click"] * conditional["cart"], rtol=1e-12)
    np.testing.assert_allclose(
        proba[2],
        conditional["click"] * conditional["cart"] * conditional["purchase"],
        rtol=1e-12,
    )
    # The conditionals are learnt: about 30 % clicks, 50 % carts per click, 60 % purchases per cart.
    means = [conditional[step].mean() for step in funnel]
    np.testing.assert_allclose(means, [0.3, 0.5, 0.6], atol=0.08)


# --------------------------------------------------- predict_conditional_proba


def test_predict_conditional_proba_esmm(funnel_data, esmm_model):
    X, _, _ = funnel_data
    proba = esmm_model.predict_proba(X)
    conditional = esmm_model.predict_conditional_proba(X)
    assert list(conditional) == ["click", "conversion"]
    # pCTR is exp(log P) on the one side and sigmoid on the other: equal to a few ulps.
    np.testing.assert_allclose(conditional["click"], proba[0][:, 1], rtol=1e-14)
    np.testing.assert_allclose(
        proba[1][:, 1], conditional["click"] * conditional["conversion"], rtol=1e-14
    )
    assert all(p.shape == (len(X),) and p.dtype == np.float64 for p in conditional.values())


def test_predict_conditional_proba_keys_follow_the_funnel_not_the_columns(funnel_data):
    X, y, _ = funnel_data
    swapped = y[["conversion", "click"]]
    clf = MultiTaskClassifier(
        "mmoe", funnel=FUNNEL, funnel_mode="independent", max_iter=2, random_state=0, **SMALL
    ).fit(X, swapped)
    conditional = clf.predict_conditional_proba(X)
    assert list(conditional) == ["click", "conversion"]
    proba = clf.predict_proba(X)  # columns of y: conversion first
    p_conversion, p_click = proba[0][:, 1], proba[1][:, 1]
    np.testing.assert_array_equal(conditional["click"], p_click)
    expected = np.clip(p_conversion / p_click, 0.0, 1.0)
    np.testing.assert_allclose(conditional["conversion"], expected, rtol=1e-12)


def test_predict_conditional_proba_needs_a_funnel(funnel_data):
    X, y, _ = funnel_data
    clf = MultiTaskClassifier("mmoe", max_iter=1, random_state=0, **SMALL).fit(X, y)
    with pytest.raises(AttributeError, match="funnel"):
        clf.predict_conditional_proba(X)


# ------------------------------------------------------- negative downsampling


def test_negative_sampling_rate_recovers_the_click_rate():
    data = make_ad_funnel(40_000, ctr=0.05, cvr=0.2, n_users=2_000, n_items=300, random_state=1)
    X, y, p_click = data.data, data.target, data.p_click
    train, test = np.arange(30_000), np.arange(30_000, 40_000)
    rate = 0.1
    clicked = y["click"].to_numpy()[train] == 1
    kept = train[clicked | (np.random.RandomState(0).rand(len(train)) < rate)]
    assert len(kept) == 4_438  # all 1,474 clicks and 10 % of the other impressions
    params = dict(funnel=FUNNEL, max_iter=8, random_state=0, **SMALL)
    corrected = MultiTaskClassifier("mmoe", negative_sampling_rate=rate, **params)
    corrected.fit(X.iloc[kept], y.iloc[kept])
    uncorrected = MultiTaskClassifier("mmoe", **params).fit(X.iloc[kept], y.iloc[kept])

    true_ctr = p_click[test].mean()
    corrected_ctr = corrected.predict_proba(X.iloc[test])[0][:, 1].mean()
    uncorrected_ctr = uncorrected.predict_proba(X.iloc[test])[0][:, 1].mean()
    # Measured on the 10,000 unsampled held-out impressions: true mean P(click) 0.0495,
    # corrected mean pCTR 0.0504 (+2 %; +9 % at most over model seeds 0-2),
    # uncorrected 0.267 (5.4 times too high).
    assert abs(corrected_ctr / true_ctr - 1) < 0.15, (true_ctr, corrected_ctr)
    assert uncorrected_ctr > 2 * true_ctr, (true_ctr, uncorrected_ctr)

    # The correction is a shift of the click logit by log(rate), p' = p / (p + (1 - p) / r),
    # and leaves the post-click conversion rate alone (the offset is stored in float32).
    assert corrected.objective_.logit_offsets.tolist() == pytest.approx([math.log(rate), 0.0])
    p = corrected.predict_conditional_proba(X.iloc[test])
    corrected.objective_.logit_offsets = None
    raw = corrected.predict_conditional_proba(X.iloc[test])
    np.testing.assert_allclose(
        p["click"], raw["click"] / (raw["click"] + (1 - raw["click"]) / rate), rtol=1e-6
    )
    np.testing.assert_array_equal(p["conversion"], raw["conversion"])


def test_negative_sampling_in_independent_mode_rescales_every_step():
    data = make_ad_funnel(40_000, ctr=0.05, cvr=0.2, n_users=2_000, n_items=300, random_state=1)
    X, y = data.data, data.target
    train, test = np.arange(30_000), np.arange(30_000, 40_000)
    rate = 0.1
    clicked = y["click"].to_numpy()[train] == 1
    kept = train[clicked | (np.random.RandomState(0).rand(len(train)) < rate)]
    clf = MultiTaskClassifier(
        "mmoe", funnel=FUNNEL, funnel_mode="independent", negative_sampling_rate=rate,
        max_iter=8, random_state=0, **SMALL,
    ).fit(X.iloc[kept], y.iloc[kept])
    corrected = clf.predict_proba(X.iloc[test])
    offsets = clf.objective_.logit_offsets
    clf.objective_.logit_offsets = None
    raw = clf.predict_proba(X.iloc[test])
    clf.objective_.logit_offsets = offsets
    # Downsampling non-clicks keeps every click, so P(conversion) / P(click) is unbiased:
    # the conversion head is rescaled by exactly the click correction.
    scale = corrected[0][:, 1] / raw[0][:, 1]
    np.testing.assert_allclose(corrected[1][:, 1], raw[1][:, 1] * scale, rtol=1e-9)
    true_ctcvr = data.p_conversion[test].mean()
    # Measured: true mean P(conversion) 0.0098, corrected pCTCVR 0.0111 (+12 %),
    # the raw sampled-scale head 0.0462 (4.7 times too high).
    assert abs(corrected[1][:, 1].mean() / true_ctcvr - 1) < 0.3, (true_ctcvr, corrected[1][:, 1].mean(), raw[1][:, 1].mean())
    assert raw[1][:, 1].mean() > 2 * true_ctcvr


def test_negative_sampling_rate_for_a_later_funnel_step_is_refused(funnel_data):
    X, y = funnel_data[0].iloc[:200], funnel_data[1].iloc[:200]
    with pytest.raises(ValueError, match="first funnel step only"):
        MultiTaskClassifier(
            funnel=FUNNEL, negative_sampling_rate={"conversion": 0.5}, max_iter=1
        ).fit(X, y)


def test_a_known_conversion_implies_an_unknown_click():
    from skmtl._funnel import impression_space_codes

    codes = np.array([[-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1]])
    filled = impression_space_codes(codes, [0, 1])
    assert filled.tolist() == [[1, 1], [-1, 0], [-1, -1], [0, 0], [1, -1]]


# ------------------------------------------------------------ feature groups


def _expert_outputs(clf, X):
    x_cat, x_cont = (torch.from_numpy(a) for a in clf.encoder_.transform(X))
    clf.module_.eval()
    with torch.no_grad():
        return clf.module_.body.experts(clf.module_.embedding(x_cat, x_cont))[0].numpy()


@pytest.mark.parametrize("architecture", ["moe", "mmoe"])
def test_group_experts_read_only_their_group(funnel_data, architecture):
    X, y, _ = funnel_data
    groups = {
        "user": ["user_segment", "device", "user_activity", "user_age"],
        "item": ["item_category", "item_price", "item_rating"],
    }
    n_shared, n_group = 2, 2
    clf = MultiTaskClassifier(
        architecture, funnel=FUNNEL, feature_groups=groups, n_group_experts=n_group, max_iter=2,
        random_state=0, **{**SMALL, "n_experts": n_shared},
    ).fit(X, y)
    shared = slice(0, n_shared)
    user = slice(n_shared, n_shared + n_group)
    item = slice(n_shared + n_group, n_shared + 2 * n_group)
    X = X.iloc[:300].reset_index(drop=True)
    order = np.random.RandomState(0).permutation(len(X))

    def shuffle_group(group):
        changed = X.copy()
        for column in groups[group]:
            changed[column] = X[column].iloc[order].reset_index(drop=True)
        return changed

    base = _expert_outputs(clf, X)
    assert base.shape[0] == n_shared + 2 * n_group
    new_items = _expert_outputs(clf, shuffle_group("item"))
    np.testing.assert_array_equal(new_items[user], base[user])
    assert np.abs(new_items[shared] - base[shared]).max() > 1e-2
    assert np.abs(new_items[item] - base[item]).max() > 1e-2
    new_users = _expert_outputs(clf, shuffle_group("user"))
    np.testing.assert_array_equal(new_users[item], base[item])
    assert np.abs(new_users[user] - base[user]).max() > 1e-2
    # The gates mix all six experts.
    assert clf.gate_weights(X).shape == (len(X), 2, n_shared + 2 * n_group)


def test_feature_groups_errors(funnel_data):
    X, y, _ = funnel_data
    bad = MultiTaskClassifier(
        "mmoe", feature_groups={"user": ["user_segment", "no_such_column"]}, max_iter=1, **SMALL
    )
    with pytest.raises(ValueError, match="no_such_column"):
        bad.fit(X, y)
    flat = MultiTaskClassifier(
        "shared_bottom", feature_groups={"user": ["user_segment"]}, max_iter=1, **SMALL
    )
    with pytest.raises(ValueError, match="moe"):
        flat.fit(X, y)


# ------------------------------------------------- model selection, pickling


def test_funnel_parameters_are_grid_searchable(funnel_data):
    X, y, _ = funnel_data
    X, y = X.iloc[:600], y.iloc[:600]
    search = GridSearchCV(
        MultiTaskClassifier("mmoe", funnel=FUNNEL, max_iter=2, random_state=0, **SMALL),
        {"funnel_mode": ["esmm", "independent"], "funnel_penalty": [0.0, 10.0]},
        cv=KFold(2),
        scoring=metrics.get_scorer("mean_roc_auc"),
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all((scores > 0.4) & (scores <= 1.0))
    # ESMM ignores funnel_penalty: its two candidates are the same model.
    assert scores[0] == scores[1]
    assert search.best_estimator_.funnel_ == [0, 1]


def test_fitted_funnel_model_pickles(funnel_data, esmm_model):
    X, _, _ = funnel_data
    clone = pickle.loads(pickle.dumps(esmm_model))
    for before, after in zip(esmm_model.predict_proba(X), clone.predict_proba(X)):
        np.testing.assert_array_equal(before, after)
    before, after = esmm_model.predict_conditional_proba(X), clone.predict_conditional_proba(X)
    for step in FUNNEL:
        np.testing.assert_array_equal(before[step], after[step])


def test_a_label_never_seen_in_fit_counts_as_wrong_on_funnel_steps_too():
    """Issue 12, item 6: one rule for unseen labels: wrong, on ordinary and funnel tasks."""
    import warnings

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    click = (X[:, 0] > 0).astype(int)
    y = np.column_stack([click, click * (X[:, 1] > 0), X[:, 2] > 0]).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MultiTaskClassifier(max_iter=3, funnel=[0, 1], random_state=0).fit(X, y)
    baseline = clf.score(X, y)
    for task in (1, 2):  # a funnel step, an ordinary task
        unseen = y.copy()
        rows = np.flatnonzero(click == 1)[:10]  # the funnel step is not implied 0 there
        unseen[rows, task] = 7
        predicted_right = clf.predict(X)[rows] == y[rows]
        was_right = predicted_right.all(axis=1).sum()
        assert clf.score(X, unseen) == pytest.approx(baseline - was_right / len(X))


# ---------------------------------------------------------------- pos_label (issue 12, item 4)
def _string_labels(y):
    """click/no_click and conv/no_conv: the positive class sorts first in both."""
    return pd.DataFrame({
        "click": np.where(y["click"] == 1, "click", "no_click"),
        "conversion": np.where(y["conversion"] == 1, "conv", "no_conv"),
    })


POSITIVE = {"click": "click", "conversion": "conv"}


def test_string_funnel_labels_with_pos_label_train_as_the_0_1_labels(funnel_data):
    """Declared positives give exactly the 0/1 model; classes_ stay sorted (the positive
    class sorts first here, so predict_proba's columns are the 0/1 model's swapped)."""
    X, y, _ = funnel_data
    params = dict(funnel=FUNNEL, max_iter=3, random_state=0, **SMALL)
    reference = MultiTaskClassifier(**params).fit(X, y)
    clf = MultiTaskClassifier(**params, pos_label=POSITIVE).fit(X, _string_labels(y))
    assert [c.tolist() for c in clf.classes_] == [["click", "no_click"], ["conv", "no_conv"]]
    for got, expected in zip(clf.predict_proba(X), reference.predict_proba(X)):
        np.testing.assert_array_equal(got, expected[:, ::-1])
    for got, expected in zip(clf.predict_conditional_proba(X).values(),
                             reference.predict_conditional_proba(X).values()):
        np.testing.assert_array_equal(got, expected)
    assert clf.score(X, _string_labels(y)) == reference.score(X, y)
    predicted = clf.predict(X)
    np.testing.assert_array_equal(predicted[:, 0] == "click", reference.predict(X)[:, 0] == 1)
    # Valid data: every conversion follows a click.
    clf.fit(X, _string_labels(y).assign(conversion=lambda d: d["conversion"].where(
        d["click"] == "click", None)))


def test_string_funnel_labels_without_pos_label_are_refused_by_name(funnel_data):
    """Before: 'no_click' (sorting last) was the positive class and valid data was refused."""
    X, y, _ = funnel_data
    with pytest.raises(ValueError, match=r"funnel needs the positive class of task 'click'.*pos_label"):
        MultiTaskClassifier(funnel=FUNNEL, max_iter=1, **SMALL).fit(X, _string_labels(y))
    # Integers other than 0/1 and -1/1 have no evident positive class either (as in sklearn).
    with pytest.raises(ValueError, match="pos_label"):
        MultiTaskClassifier(funnel=FUNNEL, max_iter=1, **SMALL).fit(X, y + 1)
    # bool and -1/1 labels keep working without a declaration.
    MultiTaskClassifier(funnel=FUNNEL, max_iter=1, **SMALL).fit(X, y.astype(bool))
    MultiTaskClassifier(funnel=FUNNEL, max_iter=1, **SMALL).fit(X, 2 * y - 1)


def test_pos_label_decides_the_negatives_that_negative_sampling_corrects(funnel_data):
    X, y, _ = funnel_data
    params = dict(funnel=FUNNEL, max_iter=2, random_state=0, negative_sampling_rate=0.25, **SMALL)
    reference = MultiTaskClassifier(**params).fit(X, y)
    clf = MultiTaskClassifier(**params, pos_label=POSITIVE).fit(X, _string_labels(y))
    # classes_ sorted: ["click", "no_click"], the 0/1 model's columns swapped
    np.testing.assert_array_equal(clf.predict_proba(X)[0], reference.predict_proba(X)[0][:, ::-1])
    single = _string_labels(y)["click"]
    with pytest.raises(ValueError, match=r"negative_sampling_rate needs the positive class"):
        MultiTaskClassifier(negative_sampling_rate=0.5, max_iter=1, **SMALL).fit(X, single)
    one = MultiTaskClassifier(negative_sampling_rate=0.5, pos_label="click", max_iter=2,
                              random_state=0, **SMALL).fit(X, single)
    ref_one = MultiTaskClassifier(negative_sampling_rate=0.5, max_iter=2, random_state=0,
                                  **SMALL).fit(X, y["click"])
    np.testing.assert_array_equal(one.predict_proba(X), ref_one.predict_proba(X)[:, ::-1])


def test_pos_label_keeps_an_ordinary_task_sorted_for_sklearn_scorers(funnel_data):
    """classes_ stay sorted whatever pos_label says; P(pos_label) is the column of its class.

    Before: pos_label reordered classes_ to [negative, positive], which sklearn's
    scorers (sorted classes_ assumed) read as the other class."""
    from sklearn.metrics import average_precision_score, make_scorer

    X, y, _ = funnel_data
    labels = _string_labels(y)["click"]
    clf = MultiTaskClassifier(pos_label="click", max_iter=2, random_state=0, **SMALL).fit(X, labels)
    assert clf.classes_.tolist() == ["click", "no_click"]
    proba = clf.predict_proba(X)
    expected = average_precision_score(labels == "click", proba[:, 0])
    scorer = make_scorer(average_precision_score, response_method="predict_proba",
                         pos_label="click")
    assert scorer(clf, X, labels) == pytest.approx(expected)
    assert expected > labels.eq("click").mean() + 0.05  # better than chance: the right column
    # pos_label=0 on 0/1 labels makes 0 the positive class; classes_ stay [0, 1].
    flipped = MultiTaskClassifier(pos_label={"click": 0}, max_iter=1, **SMALL).fit(X, y)
    assert flipped.classes_[0].tolist() == [0, 1] and flipped.classes_[1].tolist() == [0, 1]


def test_pos_label_errors(funnel_data):
    X, y, _ = funnel_data
    multi = y.assign(click=np.arange(len(y)) % 3)
    with pytest.raises(ValueError, match=r"pos_label names task 'click', which has 3 classes"):
        MultiTaskClassifier(pos_label={"click": 1}, max_iter=1, **SMALL).fit(X, multi)
    with pytest.raises(ValueError, match=r"pos_label='yes' is not a class of task 'click'"):
        MultiTaskClassifier(pos_label="yes", max_iter=1, **SMALL).fit(X, _string_labels(y))
    with pytest.raises(ValueError, match=r"pos_label names task 'clicks'"):
        MultiTaskClassifier(pos_label={"clicks": 1}, max_iter=1, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="pos_label"):  # _parameter_constraints
        MultiTaskClassifier(pos_label=0.5, max_iter=1, **SMALL).fit(X, y)


def test_pos_label_order_survives_persistence_partial_fit_and_warm_start(funnel_data, tmp_path):
    from skmtl import load_model, save_model

    X, y, _ = funnel_data
    labels = _string_labels(y)
    clf = MultiTaskClassifier(funnel=FUNNEL, pos_label=POSITIVE, max_iter=1, random_state=0,
                              warm_start=True, **SMALL).fit(X, labels)
    clf.fit(X, labels)  # the warm start sees the same (reordered) classes
    assert clf.n_iter_ == 2
    save_model(clf, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert [c.tolist() for c in loaded.classes_] == [["click", "no_click"], ["conv", "no_conv"]]
    for a, b in zip(loaded.predict_proba(X), clf.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    streamed = MultiTaskClassifier(funnel=FUNNEL, pos_label=POSITIVE, random_state=0, **SMALL)
    streamed.partial_fit(X[:1000], labels[:1000], classes=[["click", "no_click"], ["conv", "no_conv"]])
    streamed.partial_fit(X[1000:], labels[1000:])
    assert [c.tolist() for c in streamed.classes_] == [["click", "no_click"], ["conv", "no_conv"]]


def test_log_loss_reads_reordered_classes_right():
    """Found in review: sklearn's log_loss reads columns in sorted label order, so a task
    whose classes_ pos_label reordered got the other class's probability."""
    from sklearn.metrics import log_loss

    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = pd.DataFrame({"a": np.where(X[:, 0] > 0, "click", "no_click"),
                      "b": np.where(X[:, 1] > 0, "buy", "skip")})
    clf = MultiTaskClassifier(pos_label={"a": "click", "b": "buy"}, max_iter=20, random_state=0,
                              **SMALL).fit(X, y)
    proba = clf.predict_proba(X)
    expected = [log_loss(y[c] == clf.classes_[t][1], proba[t][:, 1]) for t, c in enumerate(y)]
    np.testing.assert_allclose(
        metrics.per_task_scores("log_loss", y, proba, classes=clf.classes_), expected)
    assert metrics.get_scorer("neg_mean_log_loss")(clf, X, y) == pytest.approx(-np.mean(expected))


def test_a_single_pos_label_invents_no_class_for_another_task():
    """Found in review: pos_label=1 completed a one-class string task to ['red', 1]."""
    from skmtl import UntrainableTaskWarning

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    y = pd.DataFrame({"a": (X[:, 0] > 0).astype(int), "colour": "red"})
    with pytest.warns(UntrainableTaskWarning, match="'colour'"):
        clf = MultiTaskClassifier(pos_label=1, max_iter=2, random_state=0, **SMALL).fit(X, y)
    assert clf.classes_[1].tolist() == ["red"]


@pytest.mark.parametrize(
    "change", [{"funnel_mode": "independent"}, {"funnel": None}]
)
def test_continuing_an_esmm_fit_with_other_conditional_heads_is_refused(funnel_data, change):
    X, y, _ = funnel_data
    params = {"max_iter": 2, "random_state": 0, "early_stopping": False,
              "funnel": ("click", "conversion")}
    fitted = MultiTaskClassifier(**params).fit(X, y)
    before = [p.copy() for p in fitted.predict_proba(X)]
    # the conversion head learnt P(conversion | click): it must not be read as P(conversion)
    for how in ("partial_fit", "warm_start"):
        model = pickle.loads(pickle.dumps(fitted)).set_params(**change)
        refused = r"steps trained ESMM-style \(now funnel=.*\): \['click', 'conversion'\] -> \[\]"
        with pytest.raises(ValueError, match=refused):
            if how == "partial_fit":
                model.partial_fit(X[:10], y[:10])
            else:
                model.set_params(warm_start=True).fit(X, y)
        model.set_params(**{k: params.get(k, "esmm") for k in change})  # restored: it continues
        for a, b in zip(model.predict_proba(X), before):
            np.testing.assert_array_equal(a, b)
    model.partial_fit(X[:10], y[:10])
    # a funnel in independent mode has unconditional heads: dropping it keeps their meaning
    independent = MultiTaskClassifier(**{**params, "funnel_mode": "independent"}).fit(X, y)
    independent.set_params(funnel=None).partial_fit(X[:10], y[:10])


def test_funnel_scores_count_an_unknown_click_before_a_conversion_as_a_click():
    """Training reads a conversion without a logged click as a click; the metrics must too."""
    y = pd.DataFrame({"click": [0, 1, 0, 1, np.nan], "conversion": [0, 1, np.nan, 0, 1]})
    p_click = np.array([0.2, 0.6, 0.3, 0.7, 0.1])
    proba = [np.column_stack([1 - p_click, p_click]), np.tile([0.5, 0.5], (5, 1))]
    implied = y.copy()
    implied.loc[4, "click"] = 1
    expected = metrics.per_task_scores("roc_auc", implied, proba, funnel=[0, 1])[0]
    assert expected == pytest.approx(2 / 3)
    assert metrics.per_task_scores("roc_auc", y, proba, funnel=[0, 1])[0] == expected
