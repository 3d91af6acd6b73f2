"""Smoke test of benchmarks/bench_mmoe.py: tiny data, floor and skmtl only.

It checks that the driver runs each implementation in its own subprocess,
collects their results and writes the table; it asserts nothing about timings.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_mmoe.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SCRIPT.exists(), reason="benchmarks/bench_mmoe.py not present"),
]


# For the scripts that leave torch's thread count alone (step_costs.py times raw torch steps,
# sequence_cost.py predicts on torch's count): these smoke runs assert nothing about speed,
# and two OpenMP threads spin-waiting for the core the other test worker holds made
# step_costs.py's run 3.4x slower (81.5 s against 23.9 s with one thread, measured under load).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _row(table: str, name: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{table}")


def _number(cell: str) -> float:
    return float(re.sub(r"[,x]", "", cell))


def _run_floor_and_skmtl(tmp_path, rows: int, test_rows: int, repeats: int, predict_repeats: int):
    cmd = [
        sys.executable, str(SCRIPT),
        "--rows", str(rows), "--test-rows", str(test_rows), "--epochs", "1",
        "--repeats", str(repeats), "--predict-repeats", str(predict_repeats),
        "--impls", "floor,skmtl", "--threads", "1", "--out-dir", str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_bench_mmoe_tiny_run(tmp_path):
    proc = _run_floor_and_skmtl(tmp_path, rows=3000, test_rows=1000, repeats=1, predict_repeats=2)

    table = (tmp_path / "mmoe_latest.md").read_text()
    assert table in proc.stdout
    for name in ("floor", "skmtl"):
        cells = _row(table, name)
        # implementation, runs, train/s, train vs floor, predict/s, predict vs floor,
        # fit s, peak RSS MB, AUC task 0, AUC task 1
        assert len(cells) == 10, cells
        assert cells[1] == "1"
        values = [_number(c) for c in cells[2:]]
        assert all(math.isfinite(v) and v > 0 for v in values), cells
        assert all(0.0 <= v <= 1.0 for v in values[-2:]), cells
    assert _number(_row(table, "floor")[3]) == pytest.approx(1.0)

    payload = json.loads((tmp_path / "mmoe_latest.json").read_text())
    assert payload["implementations"] == ["floor", "skmtl"]
    assert payload["skipped"] == {}
    assert payload["meta"]["n_train"] == 3000
    for name in ("floor", "skmtl"):
        (run,) = payload["runs"][name]
        assert run["n_train"] == 3000 and run["epochs"] == 1
        assert math.isfinite(run["train_samples_per_s"]) and run["maxrss_mb"] > 0
    assert payload["runs"]["skmtl"][0]["dropped_params"] == []


def test_bench_mmoe_skips_missing_peer_cleanly(tmp_path):
    cmd = [
        sys.executable, str(SCRIPT),
        "--rows", "500", "--test-rows", "200", "--epochs", "1", "--repeats", "1",
        "--predict-repeats", "1", "--impls", "floor,deepctr_torch", "--threads", "1",
        "--peers-python", str(tmp_path / "no-such-python"), "--out-dir", str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "mmoe_latest.md").read_text()
    assert "skipping deepctr_torch" in proc.stdout
    assert _row(table, "deepctr_torch")[2].startswith("skipped")
    assert _number(_row(table, "floor")[2]) > 0


def test_bench_mmoe_reports_paired_ratios(tmp_path):
    """Two rounds: the paired table gives skmtl's median ratio to the floor of its round."""
    _run_floor_and_skmtl(tmp_path, rows=2000, test_rows=500, repeats=2, predict_repeats=1)
    payload = json.loads((tmp_path / "mmoe_latest.json").read_text())
    floor = {r["round"]: r for r in payload["runs"]["floor"]}
    expected = sorted(
        r["train_samples_per_s"] / floor[r["round"]]["train_samples_per_s"]
        for r in payload["runs"]["skmtl"]
    )
    assert payload["summary"]["skmtl"]["train_vs_floor_paired"] == pytest.approx(
        [r["train_samples_per_s"] / floor[r["round"]]["train_samples_per_s"]
         for r in payload["runs"]["skmtl"]]
    )
    table = (tmp_path / "mmoe_latest.md").read_text()
    paired = table.split("Paired ratios")[1]
    cell = _row(paired, "skmtl")[1]
    assert _number(cell.split(" ")[0]) == pytest.approx(sum(expected) / 2, abs=0.006)


def test_step_costs_runs_on_tiny_data():
    script = SCRIPT.with_name("step_costs.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--rows", "5000", "--rounds", "2", "--steps", "3"],
        capture_output=True, text=True, timeout=300, env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    step = _row(proc.stdout, "step ms (median)")
    ops = _row(proc.stdout, "aten ops per step")
    forward_ops = _row(proc.stdout, "aten ops per forward")
    floor_ms, skmtl_ms = _number(step[1]), _number(step[2])
    assert floor_ms > 0 and skmtl_ms > 0
    # The ratio column is skmtl's figure over the floor's (the table's arithmetic).
    assert _number(step[3].split(" ")[0]) == pytest.approx(skmtl_ms / floor_ms, abs=0.01)
    assert _number(ops[3]) == pytest.approx(_number(ops[2]) / _number(ops[1]), abs=0.01)
    # A training step dispatches more operators than the forward pass alone.
    for column in (1, 2):
        assert _number(ops[column]) > _number(forward_ops[column]) > 10


def test_bench_extras_contention_table_and_child_fit():
    """bench_extras.py: the contention table's ratios come from its own cells; a child fit
    reports the peak extra memory from VmHWM."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_extras
    finally:
        sys.path.remove(str(SCRIPT.parent))
    configs, conditions = list(bench_extras.CONFIGS), list(bench_extras.COMPETITORS)
    speeds = {(conditions[0], configs[0]): [100.0, 120.0, 110.0],
              (conditions[0], configs[1]): [200.0, 200.0],
              (conditions[1], configs[0]): [55.0, float("nan")],
              (conditions[1], configs[1]): [4.0, 6.0]}
    records = [
        {"workload": "w", "condition": cond, "config": conf, "samples_per_second": v,
         "load_before": 1.0}
        for (cond, conf), values in speeds.items() for v in values
    ]
    table = bench_extras.contention_table(records, timeout=60)
    rows = {(r[1], r[2]): r for r in (
        [c.strip() for c in line.strip("|").split("|")] for line in table[2:]
    )}
    assert _number(rows[(conditions[0], configs[0])][3]) == 110
    assert rows[(conditions[1], configs[0])][4] == "0.50x"  # 55 / 110, the NaN run left out
    assert rows[(conditions[1], configs[1])][5] == "0.03x"  # 5 / 200
    assert "1 over 60 s" in rows[(conditions[1], configs[0])][7]
    out = bench_extras._child("fit", 3000, 1)
    assert out["samples_per_second"] > 0 and out["fit_peak_extra_mb"] >= 0


def test_bench_floor_io_tiny_run(tmp_path):
    """bench_floor_io.py: the hand-written predict loop gives skmtl's probabilities, and the
    memory and step-profile children run, on tiny data."""
    out = tmp_path / "floor_io"
    subprocess.run(
        [sys.executable, str(SCRIPT.parent / "bench_floor_io.py"), "--rows", "3000",
         "--predict-rows", "3000", "--repeats", "1", "--memory-repeats", "1", "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    report = json.loads(out.with_suffix(".json").read_text())
    for kind in ("array", "DataFrame"):
        assert report["predict"][kind]["max_abs_difference"] < 1e-6
        assert report["predict"][kind]["one_row_ms"] > 0
    steps = [m["steps"] for m in report["memory"] if m["steps"]]
    assert steps and set(steps[0]) >= {"_fit_encoder", "_training_tensors", "_train"}
    assert "| 3,000 |" in out.with_suffix(".md").read_text()


def test_funnel_selection_bias_study_tiny_run(tmp_path):
    script = SCRIPT.parent / "funnel_esmm.py"
    out = tmp_path / "bias.md"
    subprocess.run(
        [sys.executable, str(script), "--seeds", "2", "--n-train", "3000", "--n-test", "2000",
         "--max-iter", "1", "--selection-bias", "0", "1.5", "--output", str(out)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in out.read_text().splitlines() if line.startswith("| 0 ") or line.startswith("| 1.5 ")
    ]
    assert len(rows) == 10  # five quantities at each strength
    for row in rows:
        assert len(row) == 8
        if row[1].startswith("r "):  # the truth correlates perfectly with itself
            assert row[5] == "1.0000 ± 0.0000"
        for cell in row[2:6]:
            mean = float(cell.split(" ± ")[0])
            assert -1.0 <= mean <= 1.0


def test_quality_tiny_run_and_paired_differences(tmp_path):
    """quality.py: a variant and a baseline on the small-data case, one seed; the paired
    differences from a baseline are the per-seed differences of the rows."""
    out = tmp_path / "quality.md"
    subprocess.run(
        [sys.executable, str(SCRIPT.parent / "quality.py"), "--cases", "small", "--seeds", "0",
         "--models", "logreg", "--variant", 'tiny={"max_iter": 2}', "--output", str(out)],
        check=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [(r["model"], len(r["auc"])) for r in rows] == [("logreg", 12), ("tiny", 12)]
    assert rows[1]["epochs"] == 2 and rows[1]["params"] == {"max_iter": 2}
    assert min(rows[0]["auc"]) > 0.7  # the generator's linear part: a known signal
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import quality
    finally:
        sys.path.remove(str(SCRIPT.parent))
    fake = [
        {"case": "c", "model": m, "seed": s, "tasks": ["a", "b"], "auc": auc, "log_loss": loss,
         "fit_seconds": sec, "epochs": 3, "params": None, "load": [1.0]}
        for m, s, auc, loss, sec in [
            ("default", 0, [0.90, 0.80], [0.3, 0.5], 10.0), ("hgb", 0, [0.92, 0.80], [0.2, 0.5], 1.0),
            ("default", 1, [0.94, 0.82], [0.3, 0.4], 20.0), ("hgb", 1, [0.93, 0.80], [0.2, 0.5], 2.0),
        ]
    ]
    table = quality.summarise(fake)
    assert _row(table, "default")[1] == "0.9200 ± 0.0200"
    assert _row(table, "hgb")[-3] == "0.10"  # fit time ratio to default's, median over seeds
    differences = [line for line in table.splitlines() if line.startswith("| default |")][1]
    assert "| -0.0050 (-0.0200, +0.0100) | +0.0100 (+0.0000, +0.0200) |" in differences


def test_sequence_cost_tiny_run(tmp_path):
    """sequence_cost.py: three models, their ratios to the model without the history, memory."""
    out = tmp_path / "sequence_cost.md"
    subprocess.run(
        [sys.executable, str(SCRIPT.parent / "sequence_cost.py"), "--rows", "3000",
         "--test-rows", "1000", "--repeats", "1", "--output", str(out)],
        check=True, capture_output=True, text=True, timeout=600, env=ONE_THREAD,
    )
    text = out.read_text()
    assert _row(text, "no history")[2] == "1.00x"
    for model in ("history, mean", "history, attention"):
        assert _number(_row(text, model)[2]) > 0 and _number(_row(text, model)[4]) > 0
    # int32 codes of item and 50 history slots: 3,000 x 51 x 4 bytes
    assert "codes of shape (3000, 51)" in text and "int32" in text


def test_history_signal_study_tiny_run_and_paired_differences(tmp_path):
    """history_signal.py: two signals, two seeds, one epoch; the report's paired differences
    are the per-seed differences of the runs it saves."""
    out = tmp_path / "history.md"
    subprocess.run(
        [sys.executable, str(SCRIPT.parent / "history_signal.py"), "--signals", "0", "2",
         "--seeds", "2", "--n-train", "2000", "--n-test", "1500", "--history-length", "10",
         "--max-iter", "1", "--output", str(out)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    runs = json.loads(out.with_suffix(".json").read_text())
    assert [(r["signal"], r["seed"]) for r in runs] == [(0.0, 0), (0.0, 1), (2.0, 0), (2.0, 1)]
    text = out.read_text()
    for signal in (0.0, 2.0):
        chosen = [r for r in runs if r["signal"] == signal]
        assert all(r[m]["epochs"] == 1 for r in chosen for m in ("no history", "mean", "attention"))
        table = text.split(f"## history_signal = {signal:g}")[1]
        row = next(line for line in table.splitlines() if line.startswith("| attention |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        diffs = [r["attention"]["auc_ctr"] - r["no history"]["auc_ctr"] for r in chosen]
        mean, std = (float(v) for v in cells[2].split(" (")[0].split(" +- "))
        assert mean == pytest.approx(np.mean(diffs), abs=1e-4)
        assert std == pytest.approx(np.std(diffs, ddof=1), abs=1e-4)
        assert cells[2].endswith(f"({sum(d < 0 for d in diffs)}/2 < 0)")


def test_readme_command_tiny_run(tmp_path):
    """Both conditions, interleaved, on a quick look of the demo; the table has their medians."""
    output = tmp_path / "readme.md"
    result = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "readme_command.py"), "--repeats", "2",
         "--demo-args", "--n-rows 1500 --max-iter 2 --no-plot", "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(output.with_suffix(".json").read_text())["runs"]
    assert [r["condition"] for r in runs] == [
        "quiet", "next to a 2-thread torch training process",
        "next to a 2-thread torch training process", "quiet",
    ]
    assert all(set(r["fit_seconds"]) == {"shared_bottom", "moe", "mmoe"} for r in runs)
    text = output.read_text()
    quiet = sorted(r["wall_seconds"] for r in runs if r["condition"] == "quiet")
    assert f"| quiet | {(quiet[0] + quiet[1]) / 2:.1f} s |" in text
    assert "The same test AUCs in every run: yes." in text


@pytest.mark.slow
def test_thread_split_table_and_a_child_run():
    """The half-batch mode trains; the table's ratios are medians within each workload."""
    sys.path.insert(0, str(SCRIPT.parent))
    import thread_split

    result = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "thread_split.py"), "--child", "P2", "--steps", "2",
         "--workloads", "census"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["samples_per_second"] > 0
    records = [
        {"workload": "w", "condition": c, "mode": m, "repeat": r, "load": 1.0,
         "samples_per_second": rate * (1 + r)}
        for c, scale in (("quiet", 1.0), ("busy", 0.5))
        for m, rate in (("T1", 60.0 * scale), ("T2", 100.0 * scale), ("P2", 90.0 * scale))
        for r in range(3)
    ]
    lines = thread_split.table(records)
    assert "| w | quiet | P2 | 180 | 0.90x | 1.00x | 1.00 | 3 |" in lines
    assert "| w | busy | P2 | 90 | 0.45x | 0.50x | 1.00 | 3 |" in lines
