"""How many CPU threads torch uses for skmtl's training steps.

Why this exists: torch's OpenMP threads spin-wait at the end of every parallel
region. A small model runs thousands of short regions per epoch, so when another
process holds a core, a spinning thread burns its time slice waiting for a
partner that is not scheduled, and a fit runs 10-80x slower than on an idle
machine (measured in ``docs/performance.rst``). One thread has no partner to
wait for, but is about 1.6x slower than two on an idle 2-core machine.

The policy (``skmtl.set_config(thread_policy="auto")``, the default):

1. A count the user chose is kept: ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``
   set (joblib's loky workers, Dask's and Ray's workers and torchrun set them),
   or torch's count changed since skmtl was imported (``torch.set_num_threads``,
   threadpoolctl). CUDA and data-parallel fits are left alone too.
2. Before any step runs on torch's count, :data:`CHECK_STEPS` full-size steps
   on different batches are run from the current state with torch's count and
   with one thread, on copies (:func:`steps_agree`). If the results agree bit for bit, the count cannot
   change the fitted model, and a :class:`ThreadGovernor` picks the faster
   count for each full-size step from measured step times, all through the
   fit: torch's count on an idle machine, one thread while other processes use
   the cores. It starts on one thread and tries torch's count only when the
   other processes leave room for it (:class:`OtherProcessesLoad`).
3. Otherwise the count is chosen without measuring, so that results never
   depend on the machine's load: one thread for a small step
   (:data:`SMALL_STEP_WORK`), torch's count for a larger one; fits of fewer
   than :data:`MIN_GOVERNED_STEPS` steps are not measured either.

The last, smaller batch of an epoch (its shape was not checked) and the rest
of an epoch (shuffle, loss bookkeeping, the validation loss) run on the count
of point 3, whatever the governor does, so that none of it depends on the load
either; so does every step while another fit runs in another thread. Prediction keeps torch's count: its batches
are large, its parallel regions few and long, and it did not collapse under
load (measured).
"""

from __future__ import annotations

import copy
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

SMALL_STEP_WORK = 1e9
"""Parameters x batch rows below which a step counts as small (one thread).

Used only where the step's results were not shown to be thread-invariant. At
about 1e9 multiply-adds a forward pass takes ~10-20 ms on one core, long enough
that the per-region cost of waiting stays a modest part of a step.
"""

CHECK_STEPS = 8
"""Steps, on different batches, that must agree at both counts before the governor may act."""

MIN_GOVERNED_STEPS = 10 * CHECK_STEPS
"""Fits with fewer training steps in all are not measured: the check (2 x CHECK_STEPS
steps) would cost them more than a fifth of their time."""

LOAD_WINDOW = 0.1
"""Seconds over which other processes' CPU use is measured before trying more threads.

``/proc/stat`` counts in hundredths of a second per core, so 0.1 s reads an
idle 2-core machine as at most ~0.2 busy cores (room for threads) and one busy
core as at least ~0.8 (no room). A 0.3 s window kept the census fit (2.4 s,
idle machine) on one thread for its first ~40 steps, about 3 % of its time.
"""

_THREADS_AT_IMPORT = torch.get_num_threads()
_lock = threading.Lock()
_active = 0
_default: int | None = None  # the count of new threads when the first running fit began
_set_by_us: set[int] = set()


def user_thread_limit() -> str | None:
    """Why torch's thread count counts as the user's choice, or None if it does not."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(variable):
            return f"the environment variable {variable} is set"
    current = torch.get_num_threads()
    if current != _THREADS_AT_IMPORT and not (_active and current in _set_by_us):
        return (
            f"torch's thread count is {current}, not {_THREADS_AT_IMPORT} as when skmtl was "
            "imported (torch.set_num_threads or a threadpoolctl limit)"
        )
    return None


def set_threads(n: int) -> None:
    """This thread's torch thread count, inside a :func:`thread_scope` (restored at its end)."""
    if torch.get_num_threads() != n:
        _set_by_us.add(n)
        _set_this_threads_count(n)


def _set_this_threads_count(n: int) -> None:
    """``torch.set_num_threads(n)`` for this thread only, not for threads that start later.

    torch's call also sets the count that a thread takes at its first
    parallel work (ATen's default); that default is set back, from a
    short-lived thread, to what the first running fit found.
    """
    with _lock:  # no fit's thread takes the default (at its scope's start) while it is n
        torch.set_num_threads(n)
        if _default is not None and n != _default:
            keeper = threading.Thread(target=torch.set_num_threads, args=(_default,))
            keeper.start()
            keeper.join()


def _count_of_a_new_thread() -> int:
    """The count a thread takes at its first parallel work (read in a new thread)."""
    seen = []
    reader = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    reader.start()
    reader.join()
    return seen[0]


@contextmanager
def thread_scope():
    """Restore this thread's torch thread count when the block ends.

    ``torch.set_num_threads`` sets the calling thread's count, and the count
    that threads take at their first parallel work; threads already working
    keep theirs. skmtl changes only the first: each change of a fit's count
    sets the second back (:func:`_set_this_threads_count`), so no other
    thread, started before or during a fit, takes a fit's temporary count,
    and each block restores its own thread's count. While several fits run,
    none measures: each sets its fixed count before every step
    (:func:`concurrent_fits`).
    """
    global _active, _default
    with _lock:
        if _active == 0:
            _default = _count_of_a_new_thread()
            _set_by_us.clear()
        _active += 1
        # A fresh thread takes the default here (its first torch call): under the lock,
        # never in the moment another fit's change has set it to that fit's count.
        mine = torch.get_num_threads()
    try:
        yield
    finally:
        try:
            if torch.get_num_threads() != mine:
                _set_this_threads_count(mine)
        finally:
            with _lock:
                _active -= 1


def openmp_runtime() -> str | None:
    """The OpenMP library torch uses (``"libgomp"``, ``"libiomp"``, ``"libomp"``), if found."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return None
    for info in threadpool_info():
        if info.get("user_api") == "openmp" and "torch" in str(info.get("filepath", "")):
            return info.get("prefix")
    return None


def step_work(module: nn.Module, batch_size: int) -> float:
    """Multiply-adds of one forward pass, roughly: dense parameters x batch rows.

    Embedding tables are left out (a step reads a few of their rows): ``nn.Embedding``
    and the parameters a block lists in its ``lookup_tables``.
    """
    dense = 0
    for block in module.modules():
        tables = getattr(block, "lookup_tables", ())
        for name, param in block.named_parameters(recurse=False):
            if isinstance(block, nn.Embedding) or name in tables:
                continue
            dense += param.numel()
    return float(dense) * batch_size


def fixed_thread_count(n_threads: int, work: float) -> int:
    """The count chosen without measuring: 1 for a small step, else ``n_threads``."""
    return 1 if work < SMALL_STEP_WORK else n_threads


def _state_tensors(module: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [p.detach() for p in module.parameters()]
    tensors += [b.detach() for b in module.buffers()]
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    return tensors


def steps_agree(
    run_steps: Callable[[nn.Module, torch.optim.Optimizer], Sequence[torch.Tensor] | None],
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    thread_counts: Sequence[int],
) -> bool:
    """Whether training steps from the current state give the same bits at every count.

    ``run_steps(module, optimizer)`` runs some steps (:data:`CHECK_STEPS` on
    different batches, in training) on the module and optimizer it is given
    and returns the tensors it computed on the way (the losses); it is called
    on copies, so ``module`` and ``optimizer`` are not changed. The parameters,
    buffers, optimizer state and returned tensors are compared bit for bit.
    A sum split across threads rounds differently only for some values, so
    one agreeing batch proves little; several batches and states make a
    chance agreement of every compared value unlikely.
    """
    results = []
    for n in thread_counts:
        module_copy, optimizer_copy = copy.deepcopy((module, optimizer))
        set_threads(n)
        outputs = run_steps(module_copy, optimizer_copy) or []
        results.append(_state_tensors(module_copy, optimizer_copy) + list(outputs))
    first = results[0]
    return all(
        len(other) == len(first) and all(torch.equal(a, b) for a, b in zip(first, other))
        for other in results[1:]
    )


def concurrent_fits() -> bool:
    """Whether another fit in this process is inside a :func:`thread_scope` too."""
    return _active > 1


class OtherProcessesLoad:
    """How many cores other processes kept busy since the last call (Linux; None elsewhere).

    Busy time of the cores this process may run on (``/proc/stat``: the
    whole machine's line, or the lines of the cores in
    ``os.sched_getaffinity`` when a cpuset or ``taskset`` allows fewer) minus
    this process's own CPU time (``os.times``, all its threads), over the wall
    time between calls. A process confined to two cores of a busy 64-core
    server only counts the load of its own two. Reading costs some
    microseconds.
    """

    STAT_PATH = "/proc/stat"

    def __init__(self):
        self._ticks_per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._cores = _affinity_if_restricted()
        self._last = self._read()

    def _read(self):
        try:
            with open(self.STAT_PATH) as stat:
                busy = _busy_ticks(stat, self._cores)
        except (OSError, ValueError):
            return None
        if busy is None:
            return None
        own = os.times()
        return time.monotonic(), busy / self._ticks_per_second, own.user + own.system

    @property
    def supported(self) -> bool:
        """Whether this platform tells (Linux's ``/proc/stat``)."""
        return self._last is not None

    def __call__(self, min_seconds: float = 0.0) -> float | None:
        """Cores busy with other processes since the last reading; None when not known.

        Unknown on platforms without ``/proc/stat``, and when less than
        ``min_seconds`` have passed since the last reading (which is then kept,
        so that the next call measures a longer window: both clocks tick in
        hundredths of a second).
        """
        now = self._read()
        if now is None or self._last is None or now[0] - self._last[0] < max(min_seconds, 1e-6):
            return None
        last, self._last = self._last, now
        return max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])


def _affinity_if_restricted() -> frozenset[int] | None:
    """The cores this process may run on, or None when that is every core (or unknown)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = frozenset(os.sched_getaffinity(0))
    return allowed if len(allowed) < (os.cpu_count() or 0) else None


def _busy_ticks(stat, cores: frozenset[int] | None) -> int | None:
    """Busy clock ticks since boot in ``/proc/stat`` (open file): all cores' line, or ``cores``'.

    Busy is everything but idle and iowait, without guest time (already in
    user time); None if the file does not look like ``/proc/stat``. When not
    every core of ``cores`` has its own line, the total line is used.
    """
    def busy(fields: list[str]) -> int:
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]) - idle

    fields = stat.readline().split()
    if not fields or fields[0] != "cpu":
        return None
    whole = busy(fields)
    if cores is None:
        return whole
    total, seen = 0, 0
    for line in stat:  # the per-core lines follow the total; stop at the first other line
        fields = line.split()
        if not fields or not fields[0].startswith("cpu"):
            break
        if int(fields[0][3:]) in cores:
            total += busy(fields)
            seen += 1
    # A container whose /proc/stat is virtualised (LXCFS) numbers its own cores from 0,
    # not as sched_getaffinity does; its total line is then already the container's.
    return total if seen == len(cores) else whole


_fit_readings = threading.local()


def begin_load_reading() -> None:
    """Start measuring other processes' load now, at the start of a fit.

    The training run takes the reading (:func:`take_load_reading`) after the
    data are encoded; for a large input the window of :data:`LOAD_WINDOW`
    seconds has passed by then, so the first decision about more threads needs
    no wait on one thread.
    """
    _fit_readings.reading = OtherProcessesLoad()


def take_load_reading() -> OtherProcessesLoad:
    """The reading this thread's fit started (:func:`begin_load_reading`), or a new one."""
    reading = getattr(_fit_readings, "reading", None)
    _fit_readings.reading = None
    return reading if reading is not None else OtherProcessesLoad()


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ThreadGovernor:
    """Switches training steps between ``n_threads`` and 1 thread, whichever runs faster.

    It times full-size steps. It starts with one thread (a step that waits for
    a descheduled partner thread can cost 50x a normal one, a step on one
    thread of an idle machine about 1.6x), times a few steps, then tries
    ``n_threads`` for a few steps and keeps the faster count. It then watches
    the steps and tries the other count again when steps become much slower
    than when the choice was made, and otherwise at growing intervals (1 s,
    2 s, ... up to 30 s, back to 1 s after a switch). A trial ends after its
    first step if that step is far slower than the current count's. Use it only where the count cannot change the results
    (:func:`steps_agree`): it decides from the machine's load.

    A trial of ``n_threads`` is only started when ``room_for_threads()`` says
    the other processes leave room for them (so a busy machine does not pay
    for slow trial steps), and only once ``verify()`` has shown that the count
    does not change the results; if it has not, the governor stays at one
    thread for good.

    Parameters
    ----------
    n_threads : int
        The larger count (torch's).
    fixed_threads : int, default=1
        The count chosen without measuring, for the work outside the timed
        steps (the caller sets it; kept here for it).
    verify : callable, default=None
        Returns whether a step gives the same results at both counts; called
        once, before the first step at ``n_threads``. None: already shown.
    room_for_threads : callable, default=None
        Returns False when trying ``n_threads`` now would be pointless, None
        when it cannot tell yet (asked again at the next step). None: always
        try.
    clock : callable, default=time.perf_counter
        Seconds; replaced in tests.
    apply : callable, default=set_threads
        Sets the count; replaced in tests.
    """

    WARMUP = 1
    WINDOW = 3  # steps in a median: of the current count, and of a trial
    SLOWDOWN = 2.0  # recent steps this many times slower than at the choice: try the other
    STALL = 10.0  # or one step this many times slower
    ABORT = 3.0  # a trial step this many times slower than the current count ends the trial
    GAIN = 0.9  # switch when the other count's median step is below this fraction
    INTERVAL = (1.0, 30.0)

    def __init__(
        self,
        n_threads: int,
        fixed_threads: int = 1,
        verify: Callable[[], bool] | None = None,
        room_for_threads: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        apply: Callable[[int], None] = set_threads,
    ):
        self.n_threads = n_threads
        self.fixed_threads = fixed_threads
        self.concurrent = concurrent_fits
        self.frozen = False  # for good, on the fixed count, once another fit runs beside it
        self.verify = verify
        self.verified: bool | None = True if verify is None else None  # None: not yet known
        self.room_for_threads = room_for_threads or (lambda: True)
        self.clock = clock
        self.apply = apply
        self.current = 1
        self.steps = {n_threads: 0, 1: 0}
        self.switches = 0
        self._trial: int | None = None  # the count on trial, if any
        self._trial_times: list[float] = []
        self._recent: list[float] = []  # the current count's latest full steps
        self._reference: float | None = None  # its median step when the choice was made
        self._interval = self.INTERVAL[0]
        self._next_trial = 0.0
        self._warmup_left = self.WARMUP
        self._start = 0.0
        self.apply(self.current)

    @property
    def threads(self) -> int:
        """The count the next step runs with."""
        return self._trial if self._trial is not None else self.current

    def start_step(self) -> None:
        """Call before a training step (it also sets the step's count)."""
        if not self.frozen and self.concurrent():  # another fit shares the count
            self.frozen = True
            self._trial = None
            self.current = self.fixed_threads
        self.apply(self.threads)
        self._start = self.clock()

    def end_step(self) -> None:
        """Call after the step."""
        now = self.clock()
        seconds = now - self._start
        self.steps[self.threads] = self.steps.get(self.threads, 0) + 1
        if self.frozen:
            return
        if self._warmup_left > 0:
            self._warmup_left -= 1
            return
        if self._trial is not None:
            self._trial_times.append(seconds)
            if seconds > self.ABORT * self._current_time() or len(self._trial_times) >= self.WINDOW:
                self._end_trial(now)
            return
        self._recent = (self._recent + [seconds])[-self.WINDOW:]
        if len(self._recent) < self.WINDOW:
            return
        if self._reference is None:  # the first choice: try n_threads at once
            self._reference = statistics.median(self._recent)
            self._begin_trial()
        elif seconds > self.STALL * self._reference:
            self._recent = [seconds]  # the stalled step is what the trial must beat
            self._begin_trial()
        elif (
            statistics.median(self._recent) > self.SLOWDOWN * self._reference
            or now >= self._next_trial
        ):
            self._begin_trial()

    def _current_time(self) -> float:
        return statistics.median(self._recent) if self._recent else self._reference

    def _begin_trial(self) -> None:
        trial = 1 if self.current != 1 else self.n_threads
        if trial != 1:
            if self.verified is False:  # the count changes results: one thread for good
                self._next_trial = float("inf")
                return
            room = self.room_for_threads()
            if room is None:  # not known yet: ask again after the next step
                self._next_trial = 0.0
                return
            if not room:
                self._postpone()
                return
            if self.verified is None:
                self.verified = bool(self.verify())
                self.apply(self.current)
                if not self.verified:
                    self._next_trial = float("inf")
                    return
        self._trial = trial
        self._trial_times = []
        self.apply(trial)

    def _postpone(self) -> None:
        self._interval = min(2 * self._interval, self.INTERVAL[1])
        self._next_trial = self.clock() + self._interval
        if self._reference is not None and self._recent:
            self._reference = statistics.median(self._recent)

    def _end_trial(self, now: float) -> None:
        trial_time = statistics.median(self._trial_times)
        current_time = self._current_time()
        trial, self._trial = self._trial, None
        if trial_time < self.GAIN * current_time:
            self.current = trial
            self.switches += 1
            self._reference = trial_time
            self._recent = []
            self._interval = self.INTERVAL[0]
        else:
            self._reference = current_time
            self._interval = min(2 * self._interval, self.INTERVAL[1])
        self.apply(self.current)
        self._next_trial = now + self._interval
