"""Adaptive balancing of the task losses: the estimators' ``task_balancing``.

Each method other than ``"fixed"`` is a :class:`~skmtl._hooks.BackwardStep`
(it turns a batch's task losses into gradients) and a
:class:`~skmtl._hooks.TrainingObserver` (it records each epoch's effective
task weights, and keeps its learnt values with the best epoch's weights).
``"fixed"`` has no balancer: training backpropagates the objective's total
(:func:`~skmtl._hooks.backward_total`), bit for bit as without this module.

Notation: ``L_t`` is task t's loss on the batch (as the objective computes
it: masked, sample- and class-weighted), ``c_t`` its ``task_weights`` entry.
The task weights multiply each task's *balanced* term, so they keep their
meaning as a preference on top of the balance (had they multiplied the
losses before balancing, uncertainty weighting and GradNorm would undo them:
both equalise the tasks' scales).

- ``"uncertainty"`` (Kendall, Gal and Cipolla, CVPR 2018): one learnt
  log-variance ``s_t`` per task (0 at the start) and the objective
  ``sum_t c_t (exp(-s_t) L_t + s_t / 2)`` (a batch without any known label
  of task t leaves ``s_t`` alone: its loss, 0, says nothing of its scale).
  For a classification task this is the paper's ``L / sigma^2 + log sigma``
  (its scaled-softmax approximation);
  for a regression task with ``"squared_error"`` it is exactly the Gaussian
  negative log-likelihood ``||y - f||^2 / (2 sigma^2) + log sigma``, since
  skmtl's squared error is already half the squared error. Every task,
  whatever its loss, gets the same form, so at the stationary point
  ``exp(s_t) = 2 L_t`` every task's weight is ``c_t / (2 L_t)``: the tasks
  are weighed by the inverse of their loss, with one rule for all.
- ``"gradnorm"`` (Chen et al., ICML 2018): learnt weights ``w_t`` (1 at the
  start, kept positive and renormalised to sum to the number of tasks after
  every update); the network minimises ``sum_t c_t w_t L_t``, and the weights
  minimise ``sum_t |w_t n_t - mean(w n) r_t^alpha|`` with the target held
  constant, where ``n_t`` is the norm of the gradient of ``L_t`` on the last
  shared layer and ``r_t`` the task's loss ratio ``L_t / L_t(0)`` over the
  mean ratio. Its gradient is ``sign(w_t n_t - target_t) n_t``: no second
  derivative is needed.
- ``"pcgrad"`` (Yu et al., NeurIPS 2020): each task's gradient ``g_t`` (of
  ``c_t L_t``) on the shared parameters is projected onto the normal plane of
  every other task's gradient it conflicts with (negative dot product), the
  other tasks taken in a random order drawn once per step from a generator
  seeded by the fit's seed; the projected gradients are summed. Parameters
  only one task reaches keep that task's gradient.

Shared parameters are found from the gradients themselves, so any
architecture works: an element of a parameter is shared when the gradients of
at least two tasks' losses are non-zero there (a stacked tower's weight holds
one private slice per task). GradNorm's last shared layer is the module that
owns the last parameter, in registration order, with shared elements (the
experts' last layer of MMoE, the shared encoder's last layer of
shared-bottom); its shared elements are ``W``.

Effective weight (``task_balance_weights_``): the factor on each task's loss
gradient in the network's update, averaged over the epoch's steps:
``c_t`` (fixed), ``c_t exp(-s_t)`` (uncertainty), ``c_t w_t`` (GradNorm), and
for PCGrad ``c_t`` times the norm of the task's projected gradient over the
norm of its raw gradient on the shared elements (1 where it has none): at
most ``c_t``, less the more of it conflicts.
"""

from __future__ import annotations

import copy
import weakref
from numbers import Real

import numpy as np
import torch
from torch import nn

from ._hooks import TrainingObserver, TrainingState

METHODS = ("fixed", "uncertainty", "gradnorm", "pcgrad")
_OPTIONS = {
    "fixed": {},
    "uncertainty": {"learning_rate": None},
    "gradnorm": {"alpha": 1.5, "learning_rate": None},
    "pcgrad": {},
}
PER_TASK_BACKWARD = ("gradnorm", "pcgrad")
"""Methods that need one backward pass per task (refused in data-parallel fits)."""
MIN_GRADNORM_WEIGHT = 1e-3
"""GradNorm's weights are kept at least this large before renormalising."""


def balancing_settings(task_balancing, distributed: bool = False) -> dict:
    """``task_balancing`` (a method name or a dict) as ``{"method": ..., options...}``, checked.

    Raises
    ------
    ValueError
        For an unknown method or option, a bad value, or a method that needs
        one backward pass per task in a data-parallel fit.
    """
    if isinstance(task_balancing, str):
        given = {"method": task_balancing}
    elif isinstance(task_balancing, dict):
        given = dict(task_balancing)
    else:
        raise TypeError(f"task_balancing must be a str or a dict; got {task_balancing!r}.")
    method = given.pop("method", None)
    if method not in METHODS:
        raise ValueError(
            f"task_balancing needs a method among {list(METHODS)} (as a string or under the "
            f"key 'method' of a dict); got {method!r}."
        )
    unknown = sorted(set(given) - set(_OPTIONS[method]), key=str)
    if unknown:
        raise ValueError(
            f"task_balancing={method!r} takes the options {sorted(_OPTIONS[method])}; got "
            f"unknown {unknown}."
        )
    settings = {"method": method, **_OPTIONS[method], **given}
    alpha = settings.get("alpha")
    if "alpha" in settings and not (_is_number(alpha) and alpha >= 0):
        raise ValueError(f"task_balancing's alpha must be a number >= 0; got {alpha!r}.")
    rate = settings.get("learning_rate")
    if rate is not None and not (_is_number(rate) and rate > 0):
        raise ValueError(f"task_balancing's learning_rate must be a number > 0; got {rate!r}.")
    if distributed and method in PER_TASK_BACKWARD:
        raise ValueError(
            f"task_balancing={method!r} needs one backward pass per task, which data-parallel "
            "fit (distributed=True) does not support; use 'fixed' or 'uncertainty' there."
        )
    return settings


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


class _State:
    """What a balancer learns and carries across steps (forked for the thread check's copies)."""

    def __init__(self, values: torch.Tensor | None, learning_rate: float, generator=None):
        self.values = values  # s (uncertainty) or w (gradnorm), a leaf tensor; None for pcgrad
        self.optimizer = (
            None if values is None
            else torch.optim.Adam([values], lr=learning_rate, foreach=False)
        )
        self.generator = generator  # pcgrad's order of the other tasks
        self.initial_losses: torch.Tensor | None = None  # gradnorm's L_t(0), NaN until seen
        self.layer: list[tuple[str, torch.Tensor]] | None = None  # gradnorm's W: names, masks
        self.weight_sum: torch.Tensor | None = None  # the epoch's effective weights, summed
        self.n_steps = 0

    def fork(self) -> _State:
        """An independent copy (the generator's state copied, not shared)."""
        generator, self.generator = self.generator, None
        try:
            other = copy.deepcopy(self)
        finally:
            self.generator = generator
        if generator is not None:
            other.generator = torch.Generator(device=generator.device)
            other.generator.set_state(generator.get_state())
        return other


class TaskBalancer(TrainingObserver):
    """Base of the balancing methods: state per module, effective weights per epoch.

    Parameters
    ----------
    module : nn.Module
        The module training trains (not a data-parallel wrapper). A call with
        another module (the thread policy's copies) acts on a fork of the
        state, made at the first call with that module, so the check's steps
        neither change the fit nor depend on each other.
    task_weights : Tensor of shape (T,) or None
        ``c``, on the training device (ones when None).
    extra_loss : bool
        Whether the objective's total holds more than ``sum_t c_t L_t`` (the
        funnel penalty); that part's gradient is added unbalanced.
    group : SingleProcess
        The fit's process group (the losses of a data-parallel step are summed over it).
    """

    method = "fixed"

    def __init__(self, module, task_weights, n_tasks: int, *, extra_loss=False, group=None):
        from ._distributed import SingleProcess

        self.module = module
        device = next(module.parameters()).device
        self.task_weights = (
            torch.ones(n_tasks, device=device) if task_weights is None
            else task_weights.to(device=device, dtype=torch.float32)
        )
        self.n_tasks = n_tasks
        self.extra_loss = extra_loss
        self.group = SingleProcess() if group is None else group
        self.state = self.initial_state(device)
        self.epoch_weights: list[np.ndarray] = []
        self._forks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._best: _State | None = None

    # ----------------------------------------------------------- subclasses
    def initial_state(self, device) -> _State:
        raise NotImplementedError

    def step(self, state: _State, total, losses, module, gradient_scale) -> torch.Tensor:
        """Set the gradients; return the step's effective weights ``(T,)``, detached."""
        raise NotImplementedError

    # ------------------------------------------------------------ the step
    def __call__(self, total, task_losses, *, module, gradient_scale) -> None:
        inner = _unwrap(module)
        if inner is self.module:
            state = self.state
        else:
            state = self._forks.get(inner)
            if state is None:
                state = self._forks[inner] = self.state.fork()
        weights = self.step(state, total, task_losses, inner, gradient_scale)
        state.weight_sum = weights if state.weight_sum is None else state.weight_sum + weights
        state.n_steps += 1

    def extra(self, total, losses) -> torch.Tensor | None:
        """The part of ``total`` beyond the weighted task losses (the funnel penalty), or None."""
        return total - (self.task_weights * losses).sum() if self.extra_loss else None

    def backward_weighted(self, weights, total, losses, gradient_scale) -> None:
        """Backpropagate ``sum_t weights_t L_t`` (``weights`` detached), plus the extra part."""
        balanced = (weights * losses).sum()
        extra = self.extra(total, losses)
        if extra is not None:
            balanced = balanced + extra
        (balanced * gradient_scale if gradient_scale != 1 else balanced).backward()

    # ------------------------------------------------------------- observer
    def on_train_begin(self, state: TrainingState) -> None:
        # Starting from an earlier best (warm_start): if no epoch beats it, that network
        # comes back, and with it the balance it was trained with.
        self._best = self.state.fork() if state.best_epoch == 0 else None

    def on_epoch_end(self, state: TrainingState) -> None:
        own = self.state
        mean = own.weight_sum / max(own.n_steps, 1)
        self.epoch_weights.append(mean.detach().double().cpu().numpy())
        own.weight_sum, own.n_steps = None, 0
        if state.best_epoch is not None and state.best_epoch == state.epoch:
            self._best = own.fork()

    def on_train_end(self, state: TrainingState) -> None:
        # With the best epoch's network goes the balance it was trained with.
        if state.stop_reason is not None and self._best is not None:
            self.state, self._best = self._best, None

    # --------------------------------------------------------- persistence
    def export(self) -> dict:
        """The learnt state as plain arrays (model files store it as JSON)."""
        out = {"method": self.method}
        values = self.state.values
        if values is not None:
            out["values"] = values.detach().double().cpu().numpy()
            moments = self.state.optimizer.state.get(values)
            if moments:
                out["adam_step"] = np.asarray(float(moments["step"]))
                out["adam_exp_avg"] = moments["exp_avg"].double().cpu().numpy()
                out["adam_exp_avg_sq"] = moments["exp_avg_sq"].double().cpu().numpy()
        if self.state.initial_losses is not None:
            out["initial_losses"] = self.state.initial_losses.double().cpu().numpy()
        return out

    def restore(self, saved: dict | None, keep_moments: bool) -> None:
        """Continue from :meth:`export`'s ``saved`` (of the same method and tasks)."""
        if not saved or saved.get("method") != self.method:
            return
        state = self.state
        values = saved.get("values")
        if state.values is not None and values is not None and len(values) == self.n_tasks:
            device = state.values.device
            with torch.no_grad():
                state.values.copy_(torch.as_tensor(values, dtype=torch.float32))
            if keep_moments and "adam_step" in saved:
                as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
                state.optimizer.state[state.values] = {
                    "step": torch.tensor(float(saved["adam_step"])),
                    "exp_avg": as_tensor(saved["adam_exp_avg"]),
                    "exp_avg_sq": as_tensor(saved["adam_exp_avg_sq"]),
                }
        initial = saved.get("initial_losses")
        if initial is not None and len(initial) == self.n_tasks:
            state.initial_losses = torch.as_tensor(
                initial, dtype=torch.float32, device=self.task_weights.device
            )


class UncertaintyWeighting(TaskBalancer):
    """``sum_t c_t (exp(-s_t) L_t + s_t / 2)`` with learnt log-variances ``s_t``."""

    method = "uncertainty"

    def __init__(self, module, task_weights, n_tasks, *, learning_rate, **kwargs):
        self.learning_rate = learning_rate
        super().__init__(module, task_weights, n_tasks, **kwargs)

    def initial_state(self, device) -> _State:
        return _State(torch.zeros(self.n_tasks, device=device, requires_grad=True),
                      self.learning_rate)

    def step(self, state, total, losses, module, gradient_scale):
        c, s = self.task_weights, state.values
        factors = c * torch.exp(-s.detach())
        self.backward_weighted(factors, total, losses, gradient_scale)
        # d/ds_t of c_t (exp(-s_t) L_t + s_t / 2), on the whole (global) batch's losses; a
        # batch without a known label of task t (L_t = 0) leaves s_t alone.
        batch_losses = self.group.sum_in_place(losses.detach().clone())
        s_grad = c * (0.5 - torch.exp(-s.detach()) * batch_losses)
        seen = batch_losses > 0
        s.grad = torch.where(seen, s_grad, 0.0)
        _step_only(state.optimizer, s, seen)
        return factors


def _step_only(optimizer: torch.optim.Optimizer, values: torch.Tensor, moved: torch.Tensor) -> None:
    """``optimizer.step()`` for the entries of ``values`` where ``moved``; the others stay put.

    A zero gradient does not hold an entry still under Adam (its running
    averages keep moving it), so the entries without data this step get their
    value and their moment estimates back.
    """
    if bool(moved.all()):
        optimizer.step()
        return
    state = optimizer.state.get(values, {})
    kept = {name: tensor.detach().clone() for name, tensor in state.items()
            if torch.is_tensor(tensor) and tensor.shape == values.shape}
    before = values.detach().clone()
    optimizer.step()
    moments = optimizer.state[values]
    with torch.no_grad():
        values.copy_(torch.where(moved, values, before))
        for name, earlier in kept.items():
            moments[name].copy_(torch.where(moved, moments[name], earlier))


class GradNorm(TaskBalancer):
    """Weights ``w_t`` that make the gradient norms on the last shared layer follow the training rates."""

    method = "gradnorm"

    def __init__(self, module, task_weights, n_tasks, *, alpha, learning_rate, **kwargs):
        self.alpha = float(alpha)
        self.learning_rate = learning_rate
        super().__init__(module, task_weights, n_tasks, **kwargs)

    def initial_state(self, device) -> _State:
        state = _State(torch.ones(self.n_tasks, device=device, requires_grad=True),
                       self.learning_rate)
        state.initial_losses = torch.full((self.n_tasks,), float("nan"), device=device)
        return state

    def step(self, state, total, losses, module, gradient_scale):
        w = state.values.detach().clone()  # the weights of this step's network update
        layer = self.shared_layer(state, module, losses)
        if layer is not None:
            params = dict(module.named_parameters())
            wanted = [params[name] for name, _ in layer]
            norms = torch.stack([
                gradient_norm(torch.autograd.grad(
                    losses[t], wanted, retain_graph=True, allow_unused=True
                ), [mask for _, mask in layer], losses.device)
                for t in range(self.n_tasks)
            ])
            self.update_weights(state, losses.detach(), norms)
        effective = self.task_weights * w
        self.backward_weighted(effective, total, losses, gradient_scale)
        return effective

    def update_weights(self, state, losses, norms) -> None:
        """One step of the weights on GradNorm's loss, then keep them positive, summing to T."""
        initial = state.initial_losses
        first = torch.isnan(initial) & (losses > 0)
        initial[first] = losses[first]
        active = ~torch.isnan(initial) & (losses > 0) & (norms > 0)
        if int(active.sum()) < 2:  # nothing to balance on this batch
            return
        w = state.values.detach()
        scaled = w * norms  # G_t
        ratios = torch.where(active, losses / initial, 0.0)
        relative = ratios / ratios[active].mean()
        target = scaled[active].mean() * relative ** self.alpha
        state.values.grad = torch.where(active, torch.sign(scaled - target) * norms, 0.0)
        _step_only(state.optimizer, state.values, active)
        with torch.no_grad():
            state.values.clamp_(min=MIN_GRADNORM_WEIGHT)
            state.values.mul_(self.n_tasks / state.values.sum())

    def shared_layer(self, state, module, losses):
        """GradNorm's ``W``: ``[(parameter name, mask of shared elements)]``, found once.

        None while no batch has had two tasks with gradients to compare.
        """
        if state.layer is None:
            named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
            counts = shared_counts(losses, [p for _, p in named])
            if counts is None:
                return None
            shared = [(name, count >= 2) for (name, _), count in zip(named, counts)]
            shared = [(name, mask) for name, mask in shared if bool(mask.any())]
            if not shared:
                raise ValueError(
                    "task_balancing='gradnorm' balances the gradients on the layer the tasks "
                    "share, but no parameter of this network is shared by two tasks (e.g. "
                    "architecture='single_task'); use another architecture or method."
                )
            owner = shared[-1][0].rpartition(".")[0]
            state.layer = [(n, m) for n, m in shared if n.rpartition(".")[0] == owner]
        return state.layer


class PCGrad(TaskBalancer):
    """Projecting conflicting gradients (PCGrad) on the shared elements, in a seeded order."""

    method = "pcgrad"

    def __init__(self, module, task_weights, n_tasks, *, generator, **kwargs):
        self._generator = generator
        super().__init__(module, task_weights, n_tasks, **kwargs)

    def initial_state(self, device) -> _State:
        return _State(None, 0.0, generator=self._generator)

    def step(self, state, total, losses, module, gradient_scale):
        params = [p for p in module.parameters() if p.requires_grad]
        c = self.task_weights
        grads = [
            torch.autograd.grad(c[t] * losses[t] * gradient_scale, params, retain_graph=True,
                                allow_unused=True)
            for t in range(self.n_tasks)
        ]
        used = [any(g[i] is not None for g in grads) for i in range(len(params))]
        flat = torch.stack([_flatten(g, params) for g in grads])  # (T, P)
        shared = (flat != 0).sum(dim=0) >= 2
        raw = flat * shared
        order = torch.randperm(self.n_tasks, generator=state.generator).tolist()
        combined, ratios = project_conflicts(raw, order)
        combined = combined + torch.where(shared, 0.0, flat.sum(dim=0))
        extra = self.extra(total, losses)
        if extra is not None:
            extra_grads = torch.autograd.grad(extra * gradient_scale, params, allow_unused=True)
            combined = combined + _flatten(extra_grads, params)
            used = [u or g is not None for u, g in zip(used, extra_grads)]
        for param, grad, needed in zip(params, combined.split([p.numel() for p in params]), used):
            if needed:
                param.grad = grad.view_as(param)
        return c * ratios


def project_conflicts(grads: torch.Tensor, order) -> tuple[torch.Tensor, torch.Tensor]:
    """PCGrad's projection of the task gradients ``grads`` ``(T, P)``.

    Each ``g_i`` in turn is projected onto the normal plane of each other
    (unprojected) ``g_j`` in ``order`` it has a negative dot product with:
    ``g_i <- g_i - min(g_i . g_j, 0) / |g_j|^2 g_j``.

    Returns
    -------
    combined : Tensor of shape (P,)
        The sum of the projected gradients.
    ratios : Tensor of shape (T,)
        ``|projected g_i| / |g_i|`` (1 where ``g_i`` is zero).
    """
    squares = (grads * grads).sum(dim=1)
    tiny = torch.finfo(grads.dtype).tiny
    projected = []
    for i in range(grads.shape[0]):
        g = grads[i]
        for j in order:
            if j != i:
                dot = torch.dot(g, grads[j]).clamp(max=0.0)
                g = g - dot / squares[j].clamp_min(tiny) * grads[j]
        projected.append(g)
    projected = torch.stack(projected)
    norms = projected.norm(dim=1)
    ratios = torch.where(squares > 0, norms / squares.sqrt().clamp_min(tiny), 1.0)
    return projected.sum(dim=0), ratios


def gradient_norm(grads, masks, device) -> torch.Tensor:
    """The norm of ``grads`` (None: zero) restricted to ``masks``."""
    total = None
    for grad, mask in zip(grads, masks):
        if grad is not None:
            part = (grad * mask).pow(2).sum()
            total = part if total is None else total + part
    return torch.zeros((), device=device) if total is None else total.sqrt()


def shared_counts(losses, params) -> list[torch.Tensor] | None:
    """For each parameter, how many tasks' gradients are non-zero at each element.

    None when fewer than two tasks have a gradient at all (e.g. a batch with
    one task's labels only): sharing cannot be seen on it.
    """
    counts = [torch.zeros(p.shape, dtype=torch.int64, device=p.device) for p in params]
    reaching = 0
    for t in range(losses.shape[0]):
        grads = torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True)
        nonzero = [None if g is None else g != 0 for g in grads]
        if any(n is not None and bool(n.any()) for n in nonzero):
            reaching += 1
        for count, n in zip(counts, nonzero):
            if n is not None:
                count += n
    return counts if reaching >= 2 else None


def _flatten(grads, params) -> torch.Tensor:
    return torch.cat([
        (torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)
    ])


def make_balancer(settings: dict, module, objective, n_tasks: int, *, learning_rate,
                  generator, group) -> TaskBalancer | None:
    """The balancer of ``settings`` (from :func:`balancing_settings`), None for ``"fixed"``."""
    method = settings["method"]
    if method == "fixed":
        return None
    extra = bool(
        getattr(objective, "funnel", None) and getattr(objective, "funnel_mode", "") == "independent"
        and getattr(objective, "funnel_penalty", 0) > 0
    )
    common = {"extra_loss": extra, "group": group}
    c = getattr(objective, "task_weights", None)
    rate = settings.get("learning_rate") or learning_rate
    if method == "uncertainty":
        return UncertaintyWeighting(module, c, n_tasks, learning_rate=rate, **common)
    if method == "gradnorm":
        return GradNorm(module, c, n_tasks, alpha=settings["alpha"], learning_rate=rate, **common)
    return PCGrad(module, c, n_tasks, generator=generator, **common)
