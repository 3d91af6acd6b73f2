"""The thread policy: the governor's decisions, restoring the count, the user's count kept,
and fits that do not depend on it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import skmtl
from skmtl import MultiTaskClassifier, _threads
from skmtl._threads import ThreadGovernor, steps_agree, thread_scope, user_thread_limit


class FakeMachine:
    """A clock whose steps take ``step_seconds[threads]``, and a record of the counts set."""

    def __init__(self, step_seconds):
        self.step_seconds = dict(step_seconds)
        self.now = 0.0
        self.threads = None
        self.applied = []

    def clock(self):
        return self.now

    def apply(self, n):
        self.threads = n
        self.applied.append(n)

    def run(self, governor, steps):
        for _ in range(steps):
            governor.start_step()
            self.now += self.step_seconds[self.threads]
            governor.end_step()


def governor(machine, **kwargs):
    return ThreadGovernor(2, clock=machine.clock, apply=machine.apply, **kwargs)


def test_governor_moves_to_more_threads_on_an_idle_machine():
    machine = FakeMachine({1: 0.006, 2: 0.004})
    g = governor(machine)
    assert g.threads == 1  # it starts on one thread: a stalled step costs far more
    machine.run(g, 20)
    assert g.current == 2 and machine.threads == 2
    assert g.switches == 1
    assert g.steps[1] <= 5  # one warm-up step and a window of three


def test_governor_stays_on_one_thread_when_more_are_slower():
    machine = FakeMachine({1: 0.004, 2: 0.006})
    g = governor(machine)
    machine.run(g, 200)
    assert g.current == 1
    # It tries two threads again at growing intervals, not at every step.
    assert 2 <= g.steps[2] <= 3 * 8


def test_governor_leaves_two_threads_when_steps_stall_and_comes_back():
    machine = FakeMachine({1: 0.006, 2: 0.004})
    g = governor(machine)
    machine.run(g, 30)
    assert g.current == 2
    machine.step_seconds[2] = 0.3  # another process now holds a core: steps stall
    machine.run(g, 4)
    assert g.current == 1  # one stalled step, then a trial of one thread at once
    stalled_before = g.steps[2]
    machine.run(g, 2000)  # 12 s on one thread
    assert g.current == 1
    tried = g.steps[2] - stalled_before
    assert 1 <= tried <= 6  # each trial stops after its first stalled step
    machine.step_seconds[2] = 0.004  # the other process ended
    machine.run(g, 6000)  # at most one interval (30 s) until the next trial
    assert g.current == 2


def test_governor_does_not_try_more_threads_without_room():
    machine = FakeMachine({1: 0.006, 2: 0.004})
    asked = []
    g = governor(machine, room_for_threads=lambda: asked.append(1) or False)
    machine.run(g, 500)
    assert g.current == 1 and g.steps[2] == 0
    assert 1 <= len(asked) <= 8  # postponed at growing intervals


def test_governor_checks_once_and_keeps_one_thread_if_the_count_matters():
    machine = FakeMachine({1: 0.006, 2: 0.004})
    calls = []
    g = governor(machine, verify=lambda: calls.append(1) or False)
    machine.run(g, 3000)
    assert calls == [1]
    assert g.current == 1 and g.steps[2] == 0 and set(machine.applied) == {1}


def test_governor_checks_once_before_the_first_step_on_more_threads():
    machine = FakeMachine({1: 0.006, 2: 0.004})
    calls = []
    g = governor(machine, verify=lambda: calls.append(g.steps[2]) or True)
    machine.run(g, 100)
    assert calls == [0]  # before any step on two threads
    assert g.current == 2


def test_steps_agree_tells_a_thread_dependent_step():
    module = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    before = [p.detach().clone() for p in module.parameters()]

    def plain(net, opt):
        opt.zero_grad()
        net(torch.ones(4, 3)).sum().backward()
        opt.step()

    def depends_on_threads(net, opt):
        opt.zero_grad()
        (net(torch.ones(4, 3)).sum() * torch.get_num_threads()).backward()
        opt.step()

    with thread_scope():
        assert steps_agree(plain, module, optimizer, (2, 1))
        assert not steps_agree(depends_on_threads, module, optimizer, (2, 1))
    # The module and optimizer themselves are untouched (the steps ran on copies).
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert not optimizer.state


def test_thread_scope_restores_the_count_also_when_scopes_overlap_in_threads():
    original = torch.get_num_threads()
    entered, release = threading.Barrier(2), threading.Event()
    seen = {}

    def fit_like(name, n):
        with thread_scope():
            _threads.set_threads(n)
            entered.wait()
            seen[name] = torch.get_num_threads()
            release.wait(5)

    workers = [threading.Thread(target=fit_like, args=(k, 1)) for k in ("a", "b")]
    for w in workers:
        w.start()
    release.set()
    for w in workers:
        w.join()
    assert seen == {"a": 1, "b": 1}
    assert torch.get_num_threads() == original
    # a thread started now gets the original count too
    later = {}
    t = threading.Thread(target=lambda: later.setdefault("n", torch.get_num_threads()))
    t.start()
    t.join()
    assert later["n"] == original


def test_user_thread_limit(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_THREADS_AT_IMPORT", torch.get_num_threads())
    assert user_thread_limit() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" in user_thread_limit()
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(_threads, "_THREADS_AT_IMPORT", torch.get_num_threads() + 1)
    assert "torch.set_num_threads" in user_thread_limit()


def test_config_validation_and_context():
    assert skmtl.get_config()["thread_policy"] == "auto"
    with skmtl.config_context(thread_policy="off"):
        assert skmtl.get_config()["thread_policy"] == "off"
    assert skmtl.get_config()["thread_policy"] == "auto"
    with pytest.raises(ValueError, match="thread_policy must be one of"):
        skmtl.set_config(thread_policy="fast")


@pytest.mark.exclusive  # another test worker's load would leave it no free core to observe
def test_other_processes_load_sees_a_busy_process_and_not_our_own_work():
    import subprocess
    import sys
    import time

    load = _threads.OtherProcessesLoad()
    if not load.supported:
        pytest.skip("no /proc/stat on this platform")
    assert load(min_seconds=10.0) is None  # too short a window: unknown, reading kept
    # Our own CPU time does not count as another process's.
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        pass
    own = load()
    if own > _threads.available_cores() - 1.0:
        pytest.skip(f"other processes already keep {own:.1f} cores busy: no free core to see")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # the child starts, then spins for most of this window
        load()
        time.sleep(1.0)
        other = load()
    finally:
        busy.kill()
        busy.wait()
    assert other > own + 0.5  # about one core more, whatever else runs beside the test
    assert _threads.available_cores() >= 1
    assert _threads.openmp_runtime() in (None, "libgomp", "libiomp", "libomp")


# ------------------------------------------------------------------ in a fit


def _data(n=3000, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    y = np.column_stack([(X[:, 0] + X[:, 1] > 0), (X[:, 2] - X[:, 3] > 0)]).astype(int)
    return X, y


def _fit_recording_threads(monkeypatch, **params):
    """Fit, recording torch's thread count at every training forward pass."""
    counts = []
    X, y = _data()
    clf = MultiTaskClassifier(
        "mmoe", random_state=0, max_iter=3, batch_size=64, early_stopping=False, **params
    )
    original_forward = torch.nn.Module.__call__

    def recording_call(self, *args, **kwargs):
        if self.__class__.__name__ == "MultiTaskNetwork" and torch.is_grad_enabled():
            counts.append(torch.get_num_threads())
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", recording_call)
    clf.fit(X, y)
    monkeypatch.undo()
    return clf, counts


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads as torch's untouched default, whatever this machine has."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(_threads, "_THREADS_AT_IMPORT", 2)
    yield
    torch.set_num_threads(before)


def test_every_thread_gets_its_own_count_back_when_fits_overlap(two_threads):
    both_inside = threading.Barrier(2)
    after = {}

    def fit_like(name, fail):
        try:
            with thread_scope():
                _threads.set_threads(1)
                both_inside.wait(5)
                if fail:
                    raise RuntimeError("diverged")
        except RuntimeError:
            pass
        after[name] = torch.get_num_threads()  # torch's count reaches no running thread

    workers = [threading.Thread(target=fit_like, args=(k, k == "b")) for k in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert after == {"a": 2, "b": 2}
    assert torch.get_num_threads() == 2 and _threads._active == 0


def test_no_other_thread_takes_a_fits_temporary_count(two_threads):
    seen = {}
    first_work = threading.Event()

    def started_before():  # e.g. a serving thread: its first torch work falls inside the fit
        first_work.wait(5)
        seen["earlier thread"] = torch.get_num_threads()

    def started_during():
        seen["started with"] = torch.get_num_threads()
        with thread_scope():
            seen["in its fit"] = torch.get_num_threads()  # what _plan_threads reads

    def users_own_count():  # a count the user set in a thread is theirs, fits running or not
        torch.set_num_threads(1)
        with thread_scope():
            seen["user's 1 in its fit"] = torch.get_num_threads()
        seen["user's 1 after"] = torch.get_num_threads()

    earlier = threading.Thread(target=started_before)
    earlier.start()
    with thread_scope():
        _threads.set_threads(1)
        first_work.set()
        earlier.join()
        for target in (started_during, users_own_count):
            worker = threading.Thread(target=target)
            worker.start()
            worker.join()
        assert torch.get_num_threads() == 1
    assert seen == {"earlier thread": 2, "started with": 2, "in its fit": 2,
                    "user's 1 in its fit": 1, "user's 1 after": 1}
    assert torch.get_num_threads() == 2


def test_policy_does_not_change_the_fitted_model(two_threads):
    X, y = _data()
    fits = {}
    for policy in ("auto", "off"):
        with skmtl.config_context(thread_policy=policy):
            clf = MultiTaskClassifier("mmoe", random_state=0, max_iter=3, batch_size=64).fit(X, y)
        assert torch.get_num_threads() == 2  # restored
        fits[policy] = clf
    for a, b in zip(fits["auto"].predict_proba(X), fits["off"].predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    assert fits["auto"].loss_curve_ == fits["off"].loss_curve_


def test_policy_off_and_user_count_leave_threads_alone(two_threads, monkeypatch):
    with skmtl.config_context(thread_policy="off"):
        _, counts = _fit_recording_threads(monkeypatch)
    assert set(counts) == {2}
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    _, counts = _fit_recording_threads(monkeypatch)
    assert set(counts) == {2}
    assert torch.get_num_threads() == 2


def test_a_count_that_changes_results_is_fixed_without_measuring(two_threads, monkeypatch):
    # Where the check fails, a small model trains on one thread, every step alike,
    # and the count is restored afterwards.
    monkeypatch.setattr("skmtl._training.steps_agree", lambda *a, **k: False)
    _, counts = _fit_recording_threads(monkeypatch)
    assert set(counts) == {1}
    assert torch.get_num_threads() == 2


def test_a_large_step_keeps_torchs_count_where_the_check_fails(two_threads, monkeypatch):
    monkeypatch.setattr("skmtl._training.steps_agree", lambda *a, **k: False)
    monkeypatch.setattr("skmtl._training.fixed_thread_count", lambda n, work: n)
    _, counts = _fit_recording_threads(monkeypatch)
    assert set(counts) == {2}


def test_the_last_smaller_batch_runs_on_the_fixed_count(two_threads, monkeypatch):
    X, y = _data(3000 - 10)
    counts = []
    original_forward = torch.nn.Module.__call__

    def recording_call(self, *args, **kwargs):
        if self.__class__.__name__ == "MultiTaskNetwork" and torch.is_grad_enabled():
            counts.append((args[0].shape[0], torch.get_num_threads()))
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", recording_call)
    MultiTaskClassifier(
        "mmoe", random_state=0, max_iter=2, batch_size=64, early_stopping=False
    ).fit(X, y)
    monkeypatch.undo()
    last = {threads for rows, threads in counts if rows != 64}
    assert last == {1}


def test_the_check_runs_the_step_in_training_mode(two_threads, monkeypatch):
    # A warm start begins from a module left in eval mode: the check must still
    # compare training steps (dropout on), as the fit will run them.
    import skmtl._training as training

    real = training.steps_agree
    modes = []

    def spy(run, module, optimizer, counts):
        def recording_run(net, opt):
            run(net, opt)
            modes.append(net.training)
        return real(recording_run, module, optimizer, counts)

    monkeypatch.setattr(training, "steps_agree", spy)
    monkeypatch.setattr(training, "fixed_thread_count", lambda n, work: n)  # check up front
    X, y = _data()
    clf = MultiTaskClassifier(
        "mmoe", random_state=0, max_iter=2, batch_size=64, dropout=0.2, warm_start=True,
        early_stopping=False,
    )
    clf.fit(X, y)
    assert not clf.module_.training
    modes.clear()
    clf.fit(X, y)
    assert modes and all(modes)


def test_governor_stops_measuring_while_another_fit_runs():
    machine = FakeMachine({1: 0.006, 2: 0.004})
    g = governor(machine, fixed_threads=1)
    machine.run(g, 30)
    assert g.current == 2
    g.concurrent = lambda: True  # a fit in another thread entered its scope
    machine.run(g, 500)
    assert g.frozen and g.current == 1 and machine.threads == 1
    assert set(machine.applied[-500:]) == {1}


def test_the_load_reading_begun_by_fit_is_taken_once_by_its_own_thread(monkeypatch, two_threads):
    import threading

    _threads.begin_load_reading()
    begun = _threads._fit_readings.reading
    seen_elsewhere = []
    worker = threading.Thread(target=lambda: seen_elsewhere.append(_threads.take_load_reading()))
    worker.start()
    worker.join()
    assert seen_elsewhere[0] is not begun  # another thread's fit starts its own reading
    assert _threads.take_load_reading() is begun
    assert _threads.take_load_reading() is not begun  # taken once: the next run reads anew

    # A fit begins the reading and its training run takes that one.
    taken = []
    original = _threads.OtherProcessesLoad
    monkeypatch.setattr(
        "skmtl._training.take_load_reading",
        lambda: taken.append(getattr(_threads._fit_readings, "reading", None))
        or _threads.take_load_reading(),
    )
    X, y = _data()
    with skmtl.config_context(thread_policy="auto"):
        MultiTaskClassifier("shared_bottom", max_iter=3, batch_size=16, random_state=0).fit(X, y)
    assert len(taken) == 1 and isinstance(taken[0], original)


FAKE_STAT = """cpu  1000 10 500 8000 100 0 20 0 0 0
cpu0 700 0 300 1000 50 0 10 0 0 0
cpu1 100 10 100 3000 20 0 5 0 0 0
cpu2 100 0 50 2000 10 0 3 0 0 0
cpu3 100 0 50 2000 20 0 2 0 0 0
intr 123456 1 2 3
ctxt 999
"""


def test_busy_ticks_of_the_whole_machine_or_of_the_allowed_cores():
    import io

    # busy = user + nice + system + irq + softirq + steal (not idle, iowait)
    assert _threads._busy_ticks(io.StringIO(FAKE_STAT), None) == 1000 + 10 + 500 + 20
    assert _threads._busy_ticks(io.StringIO(FAKE_STAT), frozenset({1, 2})) == (
        (100 + 10 + 100 + 5) + (100 + 50 + 3)
    )
    assert _threads._busy_ticks(io.StringIO(FAKE_STAT), frozenset({0})) == 700 + 300 + 10
    # Core ids that the file does not number (a container's virtualised /proc/stat): the total
    assert _threads._busy_ticks(io.StringIO(FAKE_STAT), frozenset({7})) == 1530
    assert _threads._busy_ticks(io.StringIO(FAKE_STAT), frozenset({3, 8})) == 1530
    assert _threads._busy_ticks(io.StringIO("intr 1 2\n"), None) is None


def test_a_process_confined_to_some_cores_reads_only_their_load(monkeypatch, tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(FAKE_STAT)
    monkeypatch.setattr(_threads.OtherProcessesLoad, "STAT_PATH", str(stat))
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {1, 2}, raising=False)
    load = _threads.OtherProcessesLoad()
    assert load._cores == {1, 2} and load.supported
    # Core 0 (not ours) gets busy; ours stay idle: no load on our cores.
    stat.write_text(FAKE_STAT.replace("cpu0 700", "cpu0 900").replace("cpu  1000", "cpu  1200"))
    assert load._read()[1] == load._last[1]
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert _threads.OtherProcessesLoad()._cores is None  # every core: the total line
