"""Main demo: shared-bottom, MoE and MMoE on the bundled census-income data.

Tasks (as in the MMoE paper, Ma et al. KDD 2018, section 6.3): income > 50K and
never married; education and marital status are removed from the inputs.
A fixed 80/20 split of the rows (``random_state=0``). Prints a table of
per-task test ROC AUC and fit time.

Run: ``python examples/census_income.py``
"""

from __future__ import annotations

import argparse
import time

from sklearn.model_selection import train_test_split

from skmtl import MultiTaskClassifier, metrics
from skmtl.datasets import load_census_income

ARCHITECTURES = ("shared_bottom", "moe", "mmoe")


def run(architectures=ARCHITECTURES, *, verbose: int = 1, random_state: int = 0) -> list[dict]:
    X, y = load_census_income(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    rows = []
    for architecture in architectures:
        clf = MultiTaskClassifier(architecture, random_state=random_state, verbose=verbose)
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        aucs = metrics.per_task_scores("roc_auc", y_test, clf.predict_proba(X_test), classes=clf.classes_)
        rows.append(
            {
                "architecture": architecture,
                **{f"auc_{name}": auc for name, auc in zip(clf.task_names_, aucs)},
                "epochs": clf.n_iter_,
                "fit_seconds": fit_seconds,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) and k.startswith("auc") else
                 f"{v:.1f}" if isinstance(v, float) else str(v) for k, v in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    rows = run(args.architectures, verbose=0 if args.quiet else 1, random_state=args.random_state)
    print(format_table(rows))


if __name__ == "__main__":
    main()
