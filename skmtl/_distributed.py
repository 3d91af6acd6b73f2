"""What the processes of a data-parallel fit share, and how they share it.

``MultiTaskClassifier(distributed=True)`` fitted in every process of an
initialised ``torch.distributed`` process group (e.g. started by ``torchrun``)
trains one model on the union of the processes' shards:

- everything learnt from the data before training is global: task classes,
  category vocabularies (counts summed over ranks before ``min_frequency`` and
  ``max_categories`` apply), the continuous columns' mean and scale, balanced
  class weights, the number of rows that decides ``early_stopping="auto"``;
- the model is wrapped in ``DistributedDataParallel``; ``batch_size`` is the
  global batch, split evenly between the ranks, and every rank takes the same
  number of steps per epoch (a rank whose shard runs out contributes empty
  batches);
- each task's loss is normalised by its label weight summed over the whole
  global batch (every rank's part), so the gradient equals that of one process
  training on the global batch;
- the validation loss and the epoch loss are summed over ranks, so every rank
  takes the same early-stopping decision.

The training code sees only the small interface below; a one-process fit uses
:class:`SingleProcess`, whose collectives are identities.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import nn

if torch.distributed.is_available():
    # ``torch.distributed.nn`` takes the default process group as a default argument
    # of its functions, evaluated when the module is first imported, and
    # ``DistributedDataParallel`` imports it. First imported after
    # ``init_process_group`` (in the first data-parallel fit), it would hold that
    # group for good: ``destroy_process_group`` could then not stop gloo's threads,
    # which lived on until the interpreter's own teardown, where one can abort the
    # process ("terminate called without an active exception") after a fit that
    # succeeded. Imported with skmtl, before the group exists, it holds None.
    import torch.distributed.nn

T = TypeVar("T")


class SingleProcess:
    """The collectives of a fit in one process: each one is the identity."""

    rank = 0
    world_size = 1
    active = False

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order."""
        return [obj]

    def sum_in_place(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place; returns it."""
        return tensor

    def share(self, compute: Callable[[], T]) -> list[T]:
        """Every rank's ``compute()``, in rank order; raises on every rank if one raised."""
        return [compute()]

    def run(self, compute: Callable[[], T]) -> T:
        """This rank's ``compute()``; raises on every rank if one raised."""
        return compute()

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag``, so that every rank takes the same branch."""
        return flag

    def wrap(self, module: nn.Module, device: torch.device, user_module: bool):
        """The module to train through (a ``DistributedDataParallel`` wrapper when distributed)."""
        return module

    def check_device(self, device: torch.device) -> None:
        """Raise if ``device`` can't carry this group's collectives."""

    def sync_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (e.g. normalisation statistics)."""

    def abort(self) -> None:
        """Tear the group down after an error on this rank, so no other rank waits for it."""


class ProcessGroup(SingleProcess):
    """The collectives of a data-parallel fit over torch's default process group."""

    active = True

    def __init__(self):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group: start "
                "the script with torchrun (e.g. `torchrun --nproc_per_node=2 train.py`) and call "
                "torch.distributed.init_process_group('gloo') (or 'nccl' on GPUs) before fit. "
                "Each process passes its own shard of the rows to fit."
            )
        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.backend = dist.get_backend()

    def gather(self, obj) -> list:
        out = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def sum_in_place(self, tensor: torch.Tensor) -> torch.Tensor:
        self._dist.all_reduce(tensor, op=self._dist.ReduceOp.SUM)
        return tensor

    def _collect(self, compute, send_value: bool):
        # A rank that raises still takes part in the gather (with its error), so no
        # rank is left waiting forever in a collective that another one never reaches.
        try:
            value, error = compute(), None
        except Exception as exc:  # noqa: BLE001 (re-raised below, on every rank)
            value, error = None, exc
        message = None if error is None else f"{type(error).__name__}: {error}"
        shared = self.gather((value if send_value else None, message))
        if error is not None:
            raise error
        failed = [(rank, m) for rank, (_, m) in enumerate(shared) if m is not None]
        if failed:
            rank, message = failed[0]
            raise ValueError(
                f"fit failed on rank {rank} of {self.world_size} (so it stops on every rank): "
                f"{message}"
            )
        return value, [v for v, _ in shared]

    def share(self, compute):
        return self._collect(compute, send_value=True)[1]

    def run(self, compute):
        return self._collect(compute, send_value=False)[0]

    def decide(self, flag: bool) -> bool:
        return bool(self.gather(bool(flag))[0])

    def wrap(self, module: nn.Module, device: torch.device, user_module: bool):
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # The built-in architectures use every parameter in every step and their only
        # buffers are constants (category offsets, input masks). A user module may
        # leave parameters unused, and may have buffers that training changes (e.g.
        # BatchNorm statistics): DDP then sends rank 0's before every forward.
        # (The argument's name changed in torch 2.13.)
        name = (
            "forward_sync_buffers"
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else "broadcast_buffers"
        )
        # A column kind without columns (e.g. no categorical column) keeps an empty
        # table that no step uses: DDP must then look for unused parameters too.
        empty = any(p.numel() == 0 for p in module.parameters())
        wrapper = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=user_module or empty,
            **{name: user_module},
        )
        # The wrapper's C++ reducer holds the process group too. Were the reducer the
        # last to let go of it (after destroy_process_group, e.g. once a rank's error
        # has been raised), gloo's destructor would join its worker thread with the
        # GIL held, while that thread needs the GIL to free the collective it just
        # finished (its state holds a Python object since torch 2.13): a deadlock,
        # seen as a surviving rank that never returns. The Python object of the
        # group, released after the reducer (attributes go in the order they were
        # set), lets go last, and torch releases the GIL there.
        wrapper._skmtl_process_group = wrapper.process_group
        return wrapper

    def check_device(self, device: torch.device) -> None:
        if self.backend == "nccl" and device.type != "cuda":
            raise ValueError(
                "The process group uses the nccl backend, which needs the model on a GPU; "
                f"got device={device.type!r}. Use device='cuda' (or 'auto'), or the gloo "
                "backend for CPU training."
            )

    def sync_buffers(self, module: nn.Module) -> None:
        for buffer in module.buffers():
            self._dist.broadcast(buffer, src=0)

    def abort(self) -> None:
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


def process_group(distributed: bool) -> SingleProcess:
    """The collectives for a fit: :class:`ProcessGroup` when ``distributed`` is True."""
    return ProcessGroup() if distributed else SingleProcess()


def check_same_on_every_rank(group: SingleProcess, what: str, value, shown=None) -> None:
    """Raise a ValueError on every rank when ``value`` is not the same on all of them.

    ``shown`` (a dict, for a dict ``value``): what the message shows of each
    differing key, where ``value`` holds a comparable form of it.
    """
    values = group.share(lambda: (value, shown))
    differing = [rank for rank, (v, _) in enumerate(values) if v != values[0][0]]
    if differing:
        rank = differing[0]
        (theirs, theirs_shown), (ours, ours_shown) = values[rank], values[0]
        if isinstance(theirs, dict) and isinstance(ours, dict):  # name the differing keys only
            keys = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            theirs = {k: (theirs_shown or theirs).get(k) for k in keys}
            ours = {k: (ours_shown or ours).get(k) for k in keys}
        raise ValueError(
            f"Every process of a distributed fit must have the same {what}; rank "
            f"{rank} has {theirs} but rank 0 has {ours}."
        )


_SHOWN = reprlib.Repr()
"""How a differing parameter is shown: in full but for very long values."""
_SHOWN.maxdict = _SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxset = 50
_SHOWN.maxstring, _SHOWN.maxother = 200, 400

ORDERED_PARAMS = frozenset({"feature_groups"})
"""Dict parameters whose order means something (the groups' experts follow it)."""


def comparable_params(params: dict) -> dict:
    """Parameters that every process of a distributed fit must share, as plain data.

    ``verbose`` may differ (e.g. a progress bar on rank 0 only), and so may
    ``random_state`` (rank 0's seed is used). See :func:`comparable_value`.
    """
    return {
        name: comparable_value(value, ordered=name in ORDERED_PARAMS)
        for name, value in params.items()
        if name not in ("verbose", "random_state")
    }


def comparable_value(value, ordered: bool = False, depth: int = 0):
    """``value`` as plain data that is equal on two processes when the setting is the same.

    Arrays (numpy, pandas, torch) by dtype, shape and values; dicts whatever
    their insertion order (unless ``ordered``), sets whatever their order;
    lists and tuples item by item; classes and functions by their module and
    qualified name; other objects (a user's module instance, say), or
    anything that cannot be read so, by their type's name only. Never raises.
    """
    try:
        return _comparable(value, ordered, depth)
    except Exception:  # noqa: BLE001 (an odd object is compared by its type, not fatal)
        return type(value).__qualname__


def _comparable(value, ordered: bool, depth: int):
    if depth > 20:  # a structure that contains itself
        return type(value).__qualname__
    if isinstance(value, (type(None), bool, int, float, str, bytes, np.generic)):
        return repr(value)
    if isinstance(value, dict):
        items = [(repr(k), comparable_value(v, depth=depth + 1)) for k, v in value.items()]
        return ("dict", items if ordered else sorted(items, key=repr))
    if isinstance(value, (set, frozenset)):
        return ("set", sorted((comparable_value(v, depth=depth + 1) for v in value), key=repr))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [comparable_value(v, depth=depth + 1) for v in value])
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype.is_floating_point:
            value = value.double()
        value = value.numpy()
    if isinstance(value, np.ndarray) or hasattr(value, "to_numpy"):
        array = np.asarray(value)
        if array.ndim > 0 or array.dtype != object:
            return ("array", array.dtype.str, array.shape,
                    comparable_value(array.tolist(), depth=depth + 1))
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return type(value).__qualname__


def check_fit_agrees(
    group: SingleProcess, params: dict, n_features: int, feature_names, call: dict
) -> None:
    """Every process fits with the same parameters, the same columns, and the same kind of call.

    ``call`` describes what decides which collectives the fit will run (a
    continued or a new model, ``partial_fit``, a sparse ``X``): processes that
    differ there would pair unrelated collectives and fail obscurely.
    """
    check_same_on_every_rank(group, "kind of fit call", call)
    shown = {name: _SHOWN.repr(value) for name, value in params.items()}
    check_same_on_every_rank(group, "parameters", comparable_params(params), shown)
    names = None if feature_names is None else list(feature_names)
    check_same_on_every_rank(group, "columns", (n_features, names))


def resolve_device(device: str, group: SingleProcess, batch_size) -> torch.device:
    """The training device for ``device`` ("auto", "cpu" or "cuda"), checked on every process.

    In a distributed fit each process uses ``cuda:LOCAL_RANK`` (modulo the
    GPUs it sees) and the global ``batch_size`` must give every process a row.
    """
    resolved = group.run(lambda: _local_device(device, group.active))
    if group.active:
        group.check_device(resolved)
        if batch_size != "auto" and batch_size < group.world_size:
            raise ValueError(
                f"batch_size={batch_size} is the global batch of a distributed fit; it "
                f"must be at least the number of processes ({group.world_size})."
            )
    return resolved


def _local_device(device: str, distributed: bool) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but no CUDA GPU is available to PyTorch "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}). "
            "Use device='cpu' or device='auto'."
        )
    if device == "cuda" and distributed:
        # One GPU per process, as torchrun numbers them (modulo the GPUs this process
        # sees, e.g. one each under CUDA_VISIBLE_DEVICES); collectives use it too.
        local_rank = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
        cuda = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(cuda)
        return cuda
    return torch.device(device)
