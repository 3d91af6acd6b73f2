"""One process of the data-parallel sequence-column test (tests/test_sequence_columns.py).

Started by ``torchrun`` with gloo; each rank builds the test's data, takes its
halves of the global batches and fits with ``distributed=True``, then writes
what it learnt to ``OUT/rank<r>.npz``::

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        tests/sequence_worker.py PARAMS.json OUT
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from test_sequence_columns import distributed_data

from skmtl import MultiTaskClassifier


def main(params_path: str, out_dir: str) -> int:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    params = json.loads(Path(params_path).read_text())
    X, y, shard = distributed_data()
    mine = shard == rank
    clf = MultiTaskClassifier(**params, distributed=True).fit(X[mine], y[mine])
    out = {f"proba_{t}": p for t, p in enumerate(clf.predict_proba(X))}
    out["loss_curve"] = np.asarray(clf.loss_curve_)
    for t, vocabulary in enumerate(clf.encoder_.kinds[2].vocabularies_):
        out[f"vocabulary_{t}"] = np.array([str(v) for v in vocabulary], dtype=str)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out_dir) / f"rank{rank}.npz", **out)
    dist.barrier()  # no rank tears the group down while another still works
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
