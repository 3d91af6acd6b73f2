"""Smoke test of the main demo, examples/census_income.py, on a small subsample."""

import importlib.util
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # skipped by the fast tier, pytest -m "not slow"

ROOT = Path(__file__).resolve().parents[1]


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def census():
    return _load_example("census_income")


@pytest.fixture(scope="module")
def fitted(census):
    X_train, X_test, y_train, y_test = census.load_split(1500, random_state=0)
    rows, models = census.fit_architectures(
        X_train, y_train, X_test, y_test, max_iter=3, verbose=0, random_state=0
    )
    return rows, models, X_test


def test_load_split_subsamples_and_splits_80_20(census):
    X_train, X_test, y_train, y_test = census.load_split(1000)
    assert (len(X_train), len(X_test)) == (800, 200)
    assert list(y_train.columns) == ["income_50k", "never_married"]
    assert X_train.shape[1] == X_test.shape[1] == 38


def test_table_has_the_three_architectures_with_finite_aucs(census, fitted):
    rows, models, _ = fitted
    assert [row["architecture"] for row in rows] == ["shared_bottom", "moe", "mmoe"]
    assert list(models) == ["shared_bottom", "moe", "mmoe"]
    for row in rows:
        aucs = [row["auc_income_50k"], row["auc_never_married"]]
        assert all(math.isfinite(a) and 0.0 <= a <= 1.0 for a in aucs)
        assert row["mean_auc"] == pytest.approx(sum(aucs) / 2)
        assert row["epochs"] == 3 and row["fit_seconds"] > 0
    table = census.format_table(rows).splitlines()
    assert table[0].startswith("| architecture | auc_income_50k | auc_never_married")
    assert len(table) == 2 + 3
    assert all(f"| {name} |" in line for name, line in zip(models, table[2:]))


def test_figure_is_written(census, fitted, tmp_path):
    pytest.importorskip("matplotlib")
    rows, models, X_test = fitted
    path = tmp_path / "census.png"
    figure = census.plot_results(models, rows, X_test, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 3 learning-curve panels, 2 expert-usage panels, 1 AUC panel
    assert sum(ax.get_visible() for ax in figure.axes) == 6


def test_main_prints_the_table_and_writes_figure_and_table(census, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # recorded in the report (torch ignores it now)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delenv("SKMTL_THREAD_POLICY", raising=False)
    figure, table = tmp_path / "f.png", tmp_path / "t.md"
    rows = census.main(["--n-rows", "800", "--max-iter", "2", "--quiet",
                        "--architectures", "shared_bottom", "mmoe",
                        "--output", str(figure), "--table", str(table)])
    printed = capsys.readouterr().out
    assert [row["architecture"] for row in rows] == ["shared_bottom", "mmoe"]
    assert census.format_table(rows) in printed
    assert figure.stat().st_size > 0 and f"figure saved to {figure}" in printed
    # The written report: the run's conditions, then the printed table.
    report = table.read_text()
    assert report.endswith("\n\n" + census.format_table(rows) + "\n")
    conditions = dict(line[2:].split(": ", 1) for line in report.split("\n\n")[0].splitlines())
    assert list(conditions) == ["command", "data", "models", "software", "threads", "machine",
                                "date"]
    assert conditions["command"].startswith(
        "`OMP_NUM_THREADS=1 python examples/census_income.py --n-rows 800 --max-iter 2 "
    )
    assert "640 training and 160 test rows" in conditions["data"]
    assert "max_iter=2, random_state=0" in conditions["models"]
    assert "thread policy auto, OMP_NUM_THREADS=1" in conditions["threads"]


def test_data_parallel_example_runs_under_torchrun():
    """examples/data_parallel_census.py with two gloo processes, one epoch."""
    import os
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "examples" / "data_parallel_census.py"), "--max-iter", "1"],
        check=False, capture_output=True, text=True, timeout=600,
        # faulthandler: a process killed by a signal (e.g. an abort in a C++ thread)
        # prints every Python thread's stack, so a failure says where it happened.
        env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONFAULTHANDLER": "1"},
    )
    assert result.returncode == 0, (
        f"exit code {result.returncode}\nstdout:\n{result.stdout[-2000:]}\n"
        f"stderr:\n{result.stderr[-8000:]}"
    )
    (line,) = [s for s in result.stdout.splitlines() if s.startswith("2 process(es)")]
    auc = float(line.split("AUC income_50k ")[1].split(",")[0])
    assert 0.85 < auc <= 1.0, line


def test_click_watch_time_example_prints_the_table_and_writes_the_report(tmp_path, capsys):
    """examples/click_watch_time.py on 2,000 rows, 3 epochs."""
    example = _load_example("click_watch_time")
    report = tmp_path / "report.md"
    runs = example.main(["--n-samples", "2000", "--max-iter", "3", "--table", str(report)])
    printed = capsys.readouterr().out
    (run,) = runs
    assert list(run) == example.MODELS
    both, click_only, watch_only, hgb, truth = (run[m] for m in example.MODELS)
    for scores in (both, hgb, truth):
        assert 0.5 < scores["click"] <= 1.0 and scores["watch_time"] <= 1.0
    assert math.isnan(click_only["watch_time"]) and math.isnan(watch_only["click"])
    assert truth["click"] >= hgb["click"] - 0.02  # the true probabilities rank best
    assert "predicted_p_click" in printed and example.format_table(runs) in printed
    text = report.read_text()
    assert text.startswith("# A click and a watch time") and text.endswith(
        example.format_table(runs) + "\n")
    assert "max_iter=3" in text and "max_iter=40" not in text  # the settings used
