"""benchmarks/code_metrics.py on a tiny synthetic package with known answers."""

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "code_metrics.py"
_spec = importlib.util.spec_from_file_location("code_metrics", SCRIPT)
cm = importlib.util.module_from_spec(_spec)
sys.modules["code_metrics"] = cm  # dataclasses look their module up by name
_spec.loader.exec_module(cm)

FILES = {
    "skmtl/__init__.py": '"""Package."""\nfrom ._classifier import MultiTaskClassifier\n',
    "skmtl/_classifier.py": '''
        """Module docstring."""

        import sys

        from . import _training
        from ._base import Base
        from ._training import Helper, _private_helper, train


        class MultiTaskClassifier(Base):
            """Estimator."""

            def fit(self, X):
                """Fit.

                More words.
                """
                # a comment
                self._ready = True
                return self._fit(X)

            def _fit(self, X):
                state = Helper()
                state._secret(X)
                frame = sys._getframe(0)
                self._prepare(X)
                return train(X), frame, _training, _private_helper, state._asdict()
    ''',
    "skmtl/_base.py": '''
        class Base:
            def _prepare(self, X):
                return X
    ''',
    "skmtl/_training.py": '''
        from collections import namedtuple


        class Helper(namedtuple("Helper", "a")):
            def _secret(self, X):
                return X


        def _private_helper():
            return 1


        def train(X):
            """Train."""
            opt = None

            def run_step(batch):
                """One step."""
                opt.step()
                return batch

            total = 0
            for batch in X:
                total += run_step(batch)
            return total
    ''',
}


@pytest.fixture
def package(tmp_path):
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path


def test_measures_of_a_known_package(package):
    result = cm.measure(cm.read_sources(package))

    # _classifier.py: 27 lines; the docstrings (1 + 1 + 4), 1 comment and 6 blank lines are not code
    assert result["classifier_lines"] == {"total": 27, "code": 14}

    longest = result["functions"][0]
    assert longest["name"] == "skmtl._training.train"
    assert (longest["total"], longest["code"]) == (13, 9)
    nested = next(f for f in cm.function_sizes(cm.Package(cm.read_sources(package)))
                  if f["name"].endswith("train.run_step"))
    assert (nested["total"], nested["code"]) == (4, 3)

    reaches = result["private_reaches"]
    assert [(h["file"], h["line"], h["name"]) for h in reaches["attribute"]] == [
        ("skmtl/_classifier.py", 24, "_secret")  # not self._ready, self._fit, _asdict
    ]
    assert [h["name"] for h in reaches["import"]] == ["_private_helper"]  # not _training
    assert [h["name"] for h in reaches["third-party attribute"]] == ["_getframe"]
    assert reaches["third-party import"] == []

    chain = result["chain"]
    assert chain["chain"] == [
        "_classifier.py:MultiTaskClassifier.fit",
        "_classifier.py:MultiTaskClassifier._fit",
        "_training.py:train",
        "_training.py:train.run_step",
    ]
    assert (chain["length"], chain["files"], chain["returns"]) == (4, 2, 0)
    assert chain["guessed"] == [False, False, False]
    assert chain["step"].endswith("opt.step()")


def test_chain_counts_returns_and_guesses(package):
    # fit -> _fit -> Base._prepare (another file) -> back to the classifier's module;
    # the step is only reachable through a method call on a non-self receiver (a guess).
    (package / "skmtl/_base.py").write_text(textwrap.dedent('''
        from ._classifier import later


        class Base:
            def _prepare(self, X):
                return later(X)
    '''))
    source = (package / "skmtl/_classifier.py").read_text()
    source = source.replace("return train(X), frame", "return 0, frame") + textwrap.dedent('''

        class Stepper:
            def advance(self):
                self.opt.step()


        def later(X):
            return X.advance()
    ''')
    (package / "skmtl/_classifier.py").write_text(source)
    chain = cm.measure(cm.read_sources(package))["chain"]
    assert chain["chain"][2:] == [
        "_base.py:Base._prepare", "_classifier.py:later", "_classifier.py:Stepper.advance"
    ]
    assert chain["guessed"] == [False, False, False, True]
    assert (chain["files"], chain["returns"]) == (2, 1)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_command_line_reads_a_commit(package, capsys):
    def git(*args):
        subprocess.run(["git", "-C", str(package), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "skmtl")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    (package / "skmtl/_classifier.py").write_text("")  # the commit, not the tree, is read
    assert cm.main(["--root", str(package), "--commit", "HEAD", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classifier_lines"]["total"] == 27
    assert cm.main(["--root", str(package)]) == 0
    out = capsys.readouterr().out
    assert "| `skmtl/_classifier.py` lines (total / code) | 0 / 0 |" in out
    assert "fit -> optimizer.step chain | not found" in out
