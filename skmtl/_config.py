"""Process-wide settings of skmtl, in the style of :func:`sklearn.set_config`."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

THREAD_POLICIES = ("auto", "off")

_default = {"thread_policy": os.environ.get("SKMTL_THREAD_POLICY", "auto")}
_local = threading.local()


def _settings() -> dict:
    if not hasattr(_local, "settings"):
        _local.settings = dict(_default)
    return _local.settings


def get_config() -> dict:
    """The current values of skmtl's settings.

    Returns
    -------
    config : dict
        ``{"thread_policy": ...}``; see :func:`set_config`.
    """
    return dict(_settings())


def set_config(thread_policy=None) -> None:
    """Set skmtl's process-wide settings (for the calling thread, as scikit-learn's).

    Parameters
    ----------
    thread_policy : {"auto", "off"}, default=None
        How many CPU threads torch may use while a model trains on the CPU.
        ``"auto"`` (the default, or the environment variable
        ``SKMTL_THREAD_POLICY``): training steps switch between torch's thread
        count and one thread, whichever the step times measured during the fit
        show to be faster, so that a fit stays fast on an idle machine and
        does not collapse when other processes use the cores. It only does so
        where it has checked that the number of threads does not change the
        results; see :ref:`threads`. ``"off"``: skmtl never changes torch's
        thread count. A count the user set is always kept, whatever this
        setting: ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` in the
        environment, or torch's count changed after skmtl was imported
        (``torch.set_num_threads``, a threadpoolctl limit; a count set before
        ``import skmtl`` cannot be told from torch's default, so set it
        after, or through the environment). ``None`` leaves it unchanged.

    Unlike scikit-learn's own settings, these do not travel to the workers of
    ``n_jobs`` (joblib's threads or processes): set the environment variable
    ``SKMTL_THREAD_POLICY`` to reach them.
    """
    if thread_policy is not None:
        if thread_policy not in THREAD_POLICIES:
            raise ValueError(
                f"thread_policy must be one of {THREAD_POLICIES}; got {thread_policy!r}."
            )
        _settings()["thread_policy"] = thread_policy


@contextmanager
def config_context(*, thread_policy=None):
    """Set skmtl's settings inside a ``with`` block only.

    Parameters
    ----------
    thread_policy : {"auto", "off"}, default=None
        See :func:`set_config`.

    Yields
    ------
    None
    """
    old = get_config()
    set_config(thread_policy=thread_policy)
    try:
        yield
    finally:
        set_config(**old)


if _default["thread_policy"] not in THREAD_POLICIES:
    raise ValueError(
        f"The environment variable SKMTL_THREAD_POLICY must be one of {THREAD_POLICIES}; "
        f"got {_default['thread_policy']!r}."
    )
