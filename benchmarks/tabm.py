"""Efficient ensembling in the spirit of TabM, and embedding dropout, measured on census.

A prototype, not library code: this script changes skmtl's default network in
its worker processes only, to find out whether either lever pays for its cost
before anyone builds it into the estimators (issue 15, item 2).

TabM-mini (Gorishniy, Kotelnikov, Babenko, "TabM: Advancing Tabular Deep
Learning with Parameter-Efficient Ensembling", ICLR 2025), as prototyped here:
``k`` members share every weight of the network; member ``i`` only has its own
multiplicative adapter ``r_i`` (a vector as wide as the embedded input,
initialised with random signs). The embedded batch ``x`` of shape ``(B, D)``
becomes ``(k * B, D)`` (member ``i``'s copy is ``x * r_i``), which runs through
the unchanged MMoE body and towers as one larger batch. Training minimises the
mean of the members' losses (the batch's labels repeated ``k`` times); a
prediction (and the validation loss that early stopping watches) is the mean of
the members' predicted probabilities. The ``split`` models (``k4split``...)
train each row of a batch through one member only (row ``b`` of the shuffled
batch through member ``b mod k``): a training step then costs what the
default's does, while a prediction still runs all ``k`` members.

Embedding dropout: inverted dropout (skmtl's seeded
:class:`~skmtl.nn.blocks.Dropout`) on the concatenated embedding output,
before the body.

Every fit runs in its own process (as in ``benchmarks/quality.py``, whose
census split, scores and HGB baseline are reused), one seed after the other
and, within a seed, every model one after the other: fit times are reported as
the ratio to the default's fit of the same seed, measured minutes apart.

The report gives each model's paired differences from HGB, from ``default``
and from ``best`` (the best recipe of ``quality_latest.md``), seed by seed.

Run: ``python benchmarks/tabm.py [--seeds 0 1 2] [--models default hgb k4 ...]``,
or ``--merge a.json b.json ...`` to report the rows of several runs.
Writes ``benchmarks/results/tabm_latest.md`` (and the raw rows, ``.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # the census split, the scores, the HGB baseline, the report

OUTPUT = HERE / "results" / "tabm_latest.md"

BEST = {"numeric_embedding": "periodic", "weight_init": "kaiming",
        "learning_rate_schedule": "plateau"}
"""The best setting of ``quality_latest.md`` (income AUC 0.9442 against HGB's 0.9445)."""

MODELS = {
    "default": {},
    "hgb": None,
    "best": {"params": BEST},
    "k4": {"k": 4},
    "k8": {"k": 8},
    "best_k4": {"params": BEST, "k": 4},
    "best_k8": {"params": BEST, "k": 8},
    "k2": {"k": 2},
    "k4split": {"k": 4, "split": True},
    "best_k4split": {"params": BEST, "k": 4, "split": True},
    "edrop0.05": {"embedding_dropout": 0.05},
    "edrop0.1": {"embedding_dropout": 0.1},
    "edrop0.2": {"embedding_dropout": 0.2},
    "best_edrop0.1": {"params": BEST, "embedding_dropout": 0.1},
    # The estimators' own option (no patch): it must reproduce edrop0.2.
    "option_edrop0.2": {"params": {"embedding_dropout": 0.2}},
    "best_option_edrop0.2": {"params": {**BEST, "embedding_dropout": 0.2}},
}
"""Model name -> ``params`` (MultiTaskClassifier keyword arguments), ``k`` (TabM-mini
members, 1: none) and ``embedding_dropout``; ``hgb`` is quality.py's baseline."""


COMPARED = ("hgb", "default", "best")
"""The paired differences reported: from HGB, and from each recipe without the levers."""


# ------------------------------------------------------------- the prototype
def install(k: int, embedding_dropout: float, split: bool = False) -> None:
    """Patch skmtl (in this process) to build and train the prototype network.

    ``split``: in training, each row of a batch goes through one member only
    (row ``b`` of the shuffled batch through member ``b mod k``), so a step
    costs what the default's does; predictions still average all members.
    """
    import torch
    from torch import nn

    from skmtl import _base, _training
    from skmtl.nn.blocks import Dropout

    class Members(nn.Module):
        """Embedding dropout, then ``k`` adapted copies of the input through ``body``."""

        def __init__(self, body, in_features, generator):
            super().__init__()
            self.body = body
            self.k = k
            self.dropout = Dropout(embedding_dropout)
            signs = torch.randint(0, 2, (k, in_features), generator=generator) * 2.0 - 1.0
            self.adapters = nn.Parameter(signs)  # (k, D), member i's r_i

        def forward(self, x):
            x = self.dropout(x)
            if self.k == 1:
                return self.body(x)
            batch = x.shape[0]
            if split and self.training:  # one member per row: the default's cost
                member = torch.arange(batch, device=x.device) % self.k
                return self.body(x * self.adapters[member])
            copies = (self.adapters.unsqueeze(1) * x.unsqueeze(0)).reshape(self.k * batch, -1)
            logits = self.body(copies)  # member-major: row i * B + b is member i's row b
            if self.training:
                return logits  # each member's logits: the loss is the members' mean
            return [mean_probability_logits(z.view(self.k, batch, *z.shape[1:])) for z in logits]

    def mean_probability_logits(z):
        """Logits whose probabilities are the mean of the members' (``z``: (k, B) or (k, B, K))."""
        log_k = math.log(z.shape[0])
        if z.dim() == 2:  # binary: log(mean p) - log(mean (1 - p))
            positive = torch.logsumexp(nn.functional.logsigmoid(z), 0)
            negative = torch.logsumexp(nn.functional.logsigmoid(-z), 0)
            return positive - negative
        return torch.logsumexp(torch.log_softmax(z, -1), 0) - log_k

    original_build = _base.BaseMultiTaskNetwork._build_network

    def build(self, spec, encoder, seeds, device):
        module = original_build(self, spec, encoder, seeds, device)
        generator = torch.Generator().manual_seed(seeds.seed + 17)
        in_features = module.embedding.out_features
        module.body = Members(module.body, in_features, generator).to(device)
        return module

    original_step = _training._TrainingRun.step

    def step(self, net, opt, batch, labels, batch_totals):
        if k > 1 and not split:  # the members' rows are member-major copies of the batch
            if labels is not None:
                labels = labels.repeat(1, k)
            batch = _training.TensorData(
                batch.inputs, batch.y.repeat(k, 1), batch.sample_weight.repeat(k)
            )
        return original_step(self, net, opt, batch, labels, batch_totals)

    _base.BaseMultiTaskNetwork._build_network = build
    _training._TrainingRun.step = step


# ----------------------------------------------------------------- the runs
def worker(job: dict) -> dict:
    spec = MODELS[job["model"]]
    if spec is None:
        return quality.fit_and_score("census", "hgb", job["seed"], None)
    if spec.get("k", 1) > 1 or spec.get("embedding_dropout", 0.0) > 0:
        install(spec.get("k", 1), spec.get("embedding_dropout", 0.0), spec.get("split", False))
    row = quality.fit_and_score("census", job["model"], job["seed"], spec.get("params") or {})
    return {**row, "params": spec or None}


def run(model: str, seed: int) -> dict:
    env = dict(os.environ)
    if model == "hgb":
        env.setdefault("OMP_NUM_THREADS", "1")  # as quality.py runs it
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker",
         json.dumps({"model": model, "seed": seed})],
        capture_output=True, text=True, check=False, env=env,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"case": "census", "model": model, "seed": seed, "params": None, "error": message}


def write(rows: list[dict], conditions: dict, output: Path) -> str:
    loads = [v for r in rows for v in r.get("load", [])]
    if loads:
        conditions["load"] = (f"1-minute load average between {min(loads):.1f} and "
                              f"{max(loads):.1f} at the fits' starts and ends")
    lines = ["# TabM-mini ensembling and embedding dropout on census (prototype)", ""]
    lines += [f"- {key}: {value}" for key, value in conditions.items()]
    lines += [f"- model `{name}`: `{json.dumps(spec)}`" for name, spec in MODELS.items()
              if any(r["model"] == name for r in rows)]
    described = next((r["description"] for r in rows if "description" in r), "")
    lines += ["", described + ".", "", quality.summarise(rows, baselines=COMPARED)]
    text = "\n".join(lines)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                        help="report the rows of earlier runs (their .json files)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    argv = sys.argv[1:] if argv is None else list(argv)
    conditions = quality.run_conditions(argv, args.seeds)
    conditions["command"] = "`python benchmarks/tabm.py " + " ".join(argv) + "`"
    if args.merge:
        rows = []
        for path in args.merge:
            rows += [{**r, "run": str(path)} for r in json.loads(path.read_text())]
        conditions["command"] = ("`python benchmarks/tabm.py --merge " + " ".join(
            p.name for p in args.merge) + "`: the rows of " + str(len(args.merge)) + " runs")
        print(write(rows, conditions, args.output))
        return
    if "default" not in args.models:
        parser.error("the fit time ratios need the model 'default'")
    rows = []
    for seed in args.seeds:
        for model in args.models:
            row = run(model, seed)
            rows.append(row)
            print(f"seed {seed} {model}: {quality.row_summary(row)}", flush=True)
            args.output.with_suffix(".json").parent.mkdir(parents=True, exist_ok=True)
            args.output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(write(rows, conditions, args.output))


if __name__ == "__main__":
    main()
