"""Warnings that point at the user's line, however deep inside skmtl they are raised."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import sklearn

_PACKAGE = str(Path(__file__).resolve().parent)
# scikit-learn's _fit_context wrapper sits between the user and fit.
_SKLEARN_BASE = str(Path(sklearn.__file__).resolve().parent / "base.py")


def _internal(filename: str) -> bool:
    path = str(Path(filename).resolve()) if filename and not filename.startswith("<") else ""
    if not path:
        return False
    return path.startswith(_PACKAGE) or path == _SKLEARN_BASE


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` with the stack level of the first frame outside skmtl.

    The frames of scikit-learn's ``base.py`` (the ``_fit_context`` wrapper of
    ``fit``) count as inside, so the warning names the line that called
    ``fit`` whatever the call depth inside the package.
    """
    frame = sys._getframe(1)
    level = 2
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


class UntrainableTaskWarning(UserWarning):
    """A task had fewer than two classes among the known labels of ``fit``.

    It was left out of training and predicts its observed class (NaN where it
    had no known label); the other tasks trained as usual.
    """
