"""Multi-task graph pretraining: several pretext tasks on one shared encoder.

Tasks are named from a fixed table (``graphmae``, ``grace``, ``link``), each with its
own parameters and weight. The combined loss is either

* ``sum``: ``sum_t weight_t * loss_t``, or
* ``mgda``: the multiple-gradient descent algorithm (Désidéri 2012; Sener & Koltun
  2018) as ParetoGNN uses it: the gradients of the task losses with respect to the
  shared (encoder) parameters are combined with the convex weights ``alpha`` that
  minimise ``|| sum_t alpha_t g_t ||^2`` (a Frank-Wolfe min-norm solver), a common
  descent direction towards a Pareto-stationary point. Task ``weight`` then scales
  each loss before the solver. Each task's head gets its own task's gradient, scaled
  by that task's ``alpha``.

Every task receives the same views and :class:`~selfsup.interfaces.BatchMeta` (use
``core:identity``: GRACE then makes its two views itself). The tasks are sub-modules,
so :class:`~selfsup.interfaces.Objective`'s defaults forward ``attach``,
``on_step_end`` and ``student_parameters`` to each of them; this class adds only the
combined loss. In a distributed run, MGDA's weights are computed from each rank's
local gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, NonNegativeFloat
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from torch import Tensor, nn

__all__ = ["TASKS", "MultiTask", "min_norm_weights"]

_OWNER = "graph:multitask"

#: Task names and the objective each builds (lazy, to keep imports light).
TASKS: dict[str, str] = {
    "graphmae": "selfsup_graph.objectives.graphmae:GraphMAE",
    "grace": "selfsup_graph.objectives.grace:GRACE",
    "link": "selfsup_graph.objectives.link:LinkReconstruction",
}


def _task_class(name: str) -> type[Objective]:
    import importlib

    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def min_norm_weights(grads: Sequence[Tensor], iters: int = 50) -> Tensor:
    """Convex weights ``alpha`` minimising ``|| sum_t alpha_t g_t ||`` (Frank-Wolfe).

    Args:
        grads: One flattened gradient per task.
        iters: Frank-Wolfe iterations.

    Returns:
        ``alpha`` ``[T]``, non-negative and summing to 1.

    Example:
        >>> w = min_norm_weights([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])])
        >>> [round(float(v), 3) for v in w]
        [0.5, 0.5]
    """
    g = torch.stack([x.double() for x in grads])
    gram = g @ g.T
    t = gram.size(0)
    alpha = torch.full((t,), 1.0 / t, dtype=torch.double, device=gram.device)
    for _ in range(iters):
        grad_alpha = gram @ alpha
        k = int(torch.argmin(grad_alpha))
        vv = alpha @ grad_alpha
        vu = grad_alpha[k]
        uu = gram[k, k]
        denom = vv - 2 * vu + uu
        if denom <= 1e-18:
            break
        gamma = float(((vv - vu) / denom).clamp(0.0, 1.0))
        if gamma < 1e-9:
            break
        alpha = (1 - gamma) * alpha
        alpha[k] += gamma
    return alpha.float()


class MultiTask(Objective):
    """Several graph pretext tasks on one encoder, combined by weighted sum or MGDA.

    Args:
        embed_dim: The encoder's embedding width (passed by the engine).
        tasks: ``{name: {"weight": w, "params": {...}}}`` with names from :data:`TASKS`
            (``graphmae`` needs ``params.in_dim``). A bare number is a weight.
        combiner: ``sum`` or ``mgda``.

    Example:
        >>> mt = MultiTask(16, tasks={"grace": 1.0, "link": {"weight": 0.5}})
        >>> sorted(mt.tasks)
        ['grace', 'link']
    """

    def __init__(
        self,
        embed_dim: int,
        tasks: Annotated[
            Mapping[Literal["graphmae", "grace", "link"], NonNegativeFloat | dict[str, Any]],
            Field(min_length=1),
        ],
        combiner: Literal["sum", "mgda"] = "sum",
    ) -> None:
        super().__init__()
        if combiner not in ("sum", "mgda"):
            raise ValueError(f"{_OWNER}: combiner={combiner!r} must be 'sum' or 'mgda'")
        if not isinstance(tasks, Mapping) or not tasks:
            raise ValueError(
                f"{_OWNER}: tasks must map task names ({', '.join(TASKS)}) to weights or "
                "{weight, params}, e.g. {graphmae: {weight: 1, params: {in_dim: 1433}}, grace: 1}"
            )
        self.combiner = combiner
        self.weights: dict[str, float] = {}
        modules: dict[str, nn.Module] = {}
        for name, spec in tasks.items():
            if name not in TASKS:
                raise ValueError(f"{_OWNER}: unknown task {name!r}; choose from {', '.join(TASKS)}")
            spec = {"weight": spec} if isinstance(spec, int | float) else dict(spec or {})
            unknown = set(spec) - {"weight", "params"}
            if unknown:
                raise ValueError(
                    f"{_OWNER}: task {name!r} has unknown key(s) {sorted(unknown)}; "
                    "allowed: weight, params"
                )
            weight = spec.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ValueError(f"{_OWNER}: task {name!r} weight={weight!r} must be >= 0")
            self.weights[name] = float(weight)
            modules[name] = _task_class(name)(embed_dim=embed_dim, **dict(spec.get("params", {})))
        self.tasks = nn.ModuleDict(modules)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Run every task and combine the losses."""
        losses: dict[str, Tensor] = {}
        metrics: dict[str, float | Tensor] = {}
        for name, task in self.tasks.items():
            out = task(encoder, views, meta)
            losses[name] = out.loss * self.weights[name]
            metrics[f"{name}_loss"] = out.loss.detach()
            for key, value in out.metrics.items():
                metrics[f"{name}_{key}"] = value
        names = list(losses)
        if self.combiner == "mgda" and len(names) > 1 and torch.is_grad_enabled():
            alpha = self._mgda(encoder, [losses[n] for n in names])
        else:
            alpha = torch.ones(len(names))
        total = sum(float(a) * losses[n] for a, n in zip(alpha, names, strict=True))
        for a, n in zip(alpha, names, strict=True):
            metrics[f"{n}_alpha"] = float(a)
        return ObjectiveOutput(loss=total, metrics=metrics)  # type: ignore[arg-type]

    @staticmethod
    def _mgda(encoder: nn.Module, losses: list[Tensor]) -> Tensor:
        shared = [p for p in encoder.parameters() if p.requires_grad]
        grads = []
        for loss in losses:
            parts = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            flat = [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(parts, shared, strict=True)
            ]
            grads.append(torch.cat(flat))
        return min_norm_weights(grads)
