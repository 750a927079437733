"""A linear probe on patch-level region labels (``medical:patch-probe``).

Every crop of a split is cut into ``patch``-sided cubes; a cube whose labelled
foreground covers at least ``min_foreground`` of it is labelled with its majority
foreground region (background-dominated cubes are left out, so the task is "which
region is this", not "is there brain"). The frozen encoder embeds each cube
(``pooled``, cubes resized to a size the encoder accepts) and a multinomial logistic
regression is fitted on the train split's cubes, its inverse regularisation ``C``
chosen on the validation split (a stratified carve-out of train when there is none),
and scored once on the test split. The same probe on the raw intensities (each cube
average-pooled to ``raw_side`` cubed voxels) is the no-learning baseline, reported
beside it (``raw_*`` metrics).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.evaluation import standardize, stratified_split
from selfsup.interfaces import DataSplits, EvalContext
from torch import Tensor, nn

from selfsup_medical.objectives.common import fit_size, resize

__all__ = ["PatchProbe", "patch_labels"]

_ID = "medical:patch-probe"


def patch_labels(y: Tensor, patch: int, min_foreground: float, num_classes: int) -> Tensor:
    """Majority foreground class of each ``patch`` cube of label maps ``[N, D, H, W]``.

    Returns ``[N, n_cubes]`` with ``-1`` for cubes under ``min_foreground``.
    """
    onehot = F.one_hot(y.clamp_min(0).long(), num_classes).permute(0, 4, 1, 2, 3).float()
    counts = F.avg_pool3d(onehot, patch).flatten(2)  # [N, K, n_cubes] fractions
    fg = counts[:, 1:]
    label = fg.argmax(1) + 1
    label[fg.sum(1) < min_foreground] = -1
    return label


def _cubes(x: Tensor, patch: int) -> Tensor:
    """``[N, C, D, H, W]`` -> ``[N * n_cubes, C, patch, patch, patch]`` (row-major cubes)."""
    n, c, d, h, w = x.shape
    g = (d // patch, h // patch, w // patch)
    x = x[:, :, : g[0] * patch, : g[1] * patch, : g[2] * patch]
    x = x.reshape(n, c, g[0], patch, g[1], patch, g[2], patch)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(-1, c, patch, patch, patch)


class PatchProbe:
    """Logistic-regression probe on region labels of cubes, and the raw-intensity baseline.

    Args:
        patch: Side of the cubes in voxels (must divide the crop sides).
        min_foreground: Minimum labelled-foreground fraction of a kept cube.
        raw_side: Raw-intensity baseline: cubes average-pooled to this side.
        max_items: Crops used per split at most (seeded subset), to bound the time.
        c_grid: Inverse regularisation strengths tried (selected on validation cubes).
        batch_size: Cubes per encoder forward pass.
    """

    def __init__(
        self,
        patch: Annotated[int, Field(ge=2)] = 16,
        min_foreground: Annotated[float, Field(ge=0, le=1)] = 0.3,
        raw_side: Annotated[int, Field(ge=1)] = 4,
        max_items: Annotated[int, Field(ge=1)] = 64,
        c_grid: tuple[Annotated[float, Field(gt=0)], ...] = (0.01, 0.1, 1.0, 10.0),
        batch_size: Annotated[int, Field(ge=1)] = 32,
    ) -> None:
        if not c_grid:
            raise ValueError(f"{_ID}: c_grid must hold at least one value")
        self.patch, self.min_foreground, self.raw_side = patch, min_foreground, raw_side
        self.max_items, self.c_grid, self.batch_size = max_items, tuple(c_grid), batch_size

    def _split(self, data: DataSplits, name: str, seed: int) -> tuple[Tensor, Tensor]:
        """Labelled cubes ``[M, C, p, p, p]`` and their region labels ``[M]`` of a split."""
        split = data.split(name)
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
        xs, ys = [], []
        for i in order[: self.max_items].tolist():
            x, y = split[i]
            if not isinstance(y, Tensor) or y.dim() != 3:
                raise ValueError(f"{_ID}: {name} item {i} has no label map (got {y!r})")
            if any(s % self.patch for s in x.shape[1:]):
                raise ValueError(
                    f"{_ID}: patch={self.patch} must divide the crop sides "
                    f"{tuple(x.shape[1:])} of split {name!r}; change patch"
                )
            xs.append(x)
            ys.append(y)
        x, y = torch.stack(xs), torch.stack(ys)
        labels = patch_labels(y, self.patch, self.min_foreground, data.num_classes).flatten()
        cubes = _cubes(x, self.patch)
        keep = labels >= 0
        return cubes[keep], labels[keep]

    @torch.no_grad()
    def _embed(self, encoder: nn.Module, cubes: Tensor, ctx: EvalContext) -> Tensor:
        size = fit_size(encoder, cubes.shape[2:])
        out = []
        for start in range(0, len(cubes), self.batch_size):
            batch = resize(cubes[start : start + self.batch_size].to(ctx.device), size)
            with ctx.runtime.autocast():
                out.append(encoder(batch).pooled.float().cpu())
        return torch.cat(out)

    def _raw(self, cubes: Tensor) -> Tensor:
        return F.adaptive_avg_pool3d(cubes.float(), self.raw_side).flatten(1)

    def _probe(
        self, fit: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]
    ) -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score

        xf, xv, xt = standardize(fit[0], val[0], test[0])
        best, best_c = -1.0, self.c_grid[0]
        for c in self.c_grid:
            model = LogisticRegression(C=c, max_iter=500).fit(xf.numpy(), fit[1].numpy())
            score = float(balanced_accuracy_score(val[1].numpy(), model.predict(xv.numpy())))
            if score > best:
                best, best_c = score, c
        model = LogisticRegression(C=best_c, max_iter=500).fit(xf.numpy(), fit[1].numpy())
        pred = model.predict(xt.numpy())
        truth = test[1].numpy()
        return {
            "acc": float(np.mean(pred == truth)),
            "balanced_acc": float(balanced_accuracy_score(truth, pred)),
            "C": float(best_c),
        }

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Probe frozen embeddings and raw intensities; accuracy on the test cubes."""
        if data.task != "segmentation" or data.test is None:
            raise ValueError(
                f"{_ID}: needs a segmentation dataset with a test split (label maps per "
                f"crop), got task={data.task!r}; use medical:colin27-aal"
            )
        was_training = encoder.training
        encoder.eval()
        train = self._split(data, "train", ctx.seed)
        if data.val is not None:
            fit, val = train, self._split(data, "val", ctx.seed)
        else:
            fit_idx, val_idx = stratified_split(train[1], 0.25, ctx.seed)
            fit, val = (
                (train[0][fit_idx], train[1][fit_idx]),
                (train[0][val_idx], train[1][val_idx]),
            )
        test = self._split(data, "test", ctx.seed)
        if len(fit[1].unique()) < 2:
            raise ValueError(f"{_ID}: the train cubes hold fewer than 2 regions; lower patch")
        emb = [(self._embed(encoder, s[0], ctx), s[1]) for s in (fit, val, test)]
        raw = [(self._raw(s[0]), s[1]) for s in (fit, val, test)]
        encoder.train(was_training)
        ours, base = self._probe(*emb), self._probe(*raw)
        ctx.record(
            protocol={
                "patch": self.patch,
                "min_foreground": self.min_foreground,
                "cubes": {"fit": len(fit[1]), "val": len(val[1]), "test": len(test[1])},
                "selection": "C by balanced accuracy on the validation cubes",
                "C": ours["C"],
                "raw_C": base["C"],
                "raw_features": f"cube average-pooled to {self.raw_side}^3 intensities",
            }
        )
        return {
            "patch_acc": ours["acc"],
            "patch_balanced_acc": ours["balanced_acc"],
            "raw_patch_acc": base["acc"],
            "raw_patch_balanced_acc": base["balanced_acc"],
        }
