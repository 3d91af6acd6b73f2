"""Data-parallel training on census-income with torchrun: one shard per process.

Run it with two processes on this machine (gloo, CPU)::

    torchrun --standalone --nproc_per_node=2 examples/data_parallel_census.py

Each process loads only its own shard of the training rows (here, every
``world_size``-th row of the bundled file; in real use, its own files), fits
``MultiTaskClassifier(distributed=True)`` with the same parameters as the
others, and they train one model together. Rank 0 then scores the model on the
held-out rows and saves it. ``--single`` fits the same model in one process on
all the training rows, for comparison::

    python examples/data_parallel_census.py --single
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skmtl import MultiTaskClassifier
from skmtl.datasets import load_census_income


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", action="store_true", help="one process, all rows")
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--save", default=None, help="where rank 0 saves the model")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    distributed = not args.single
    if distributed:
        # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every process.
        # skmtl was imported above, before the group exists: see "Import skmtl before
        # init_process_group" in docs/data_parallel.rst.
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    else:
        rank, world_size = 0, 1

    X, y = load_census_income(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    shard = slice(rank, None, world_size)  # this process's rows
    clf = MultiTaskClassifier(
        architecture="mmoe",
        batch_size=1024,  # the global batch: split between the processes
        max_iter=args.max_iter,
        early_stopping=True,
        random_state=0,
        distributed=distributed,
        verbose=rank == 0,
    )
    start = time.perf_counter()
    clf.fit(X_train.iloc[shard], y_train.iloc[shard])
    seconds = time.perf_counter() - start

    if rank == 0:  # every rank holds the same fitted model; one of them reports
        probabilities = clf.predict_proba(X_test)
        aucs = {
            task: roc_auc_score(y_test[task], p[:, 1])
            for task, p in zip(y_test.columns, probabilities)
        }
        print(
            f"{world_size} process(es): {len(X_train.iloc[shard]):,} training rows each, "
            f"{clf.n_iter_} epochs in {seconds:.1f} s; final training loss "
            f"{clf.loss_curve_[-1]:.5f}; best validation loss {-clf.best_validation_score_:.5f}; "
            + ", ".join(f"AUC {task} {auc:.4f}" for task, auc in aucs.items())
        )
        if args.save:
            from skmtl import save_model

            save_model(clf, args.save)
    if distributed:
        # Every rank waits for the others (rank 0 is still scoring) before the group is
        # torn down: no process closes its connections while another may still use them.
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
