"""``audio:ltdnn-probe``: a layer-aware TDNN head trained on frozen hidden states.

Protocol: the frozen encoder's hidden states (all layers; its frame tokens when it has
none) are computed once per split and kept on the CPU, cropped to each clip's real
frames (float16). An :class:`~selfsup_audio.heads.LTDNN` head is trained on ``train``
with cross-entropy on the speaker flag (any flag: ``flag``), Adam, a fixed number of
epochs; the epoch with the best validation accuracy is kept (``val`` split, or a
stratified, seeded carve-out of ``train``). Reported once on the test split: speaker-ID
accuracy and the verification EER/minDCF of the head's embeddings (cosine scoring on
every same-speaker pair and up to ``max_nontarget`` other pairs). The learned layer
weights are recorded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.evaluation import accuracy, stratified_split
from selfsup.runtime import to_device
from torch import Tensor

from selfsup_audio.evaluators.verification import build_trials, cosine_scores
from selfsup_audio.heads import LTDNN
from selfsup_audio.metrics import summary, write_curves

if TYPE_CHECKING:
    from selfsup.interfaces import DataSplits, EncoderOutput, EvalContext
    from selfsup.runtime import Runtime
    from torch import nn

__all__ = [
    "HiddenStates",
    "LTDNNProbe",
    "collect_hidden_states",
    "hidden_of",
    "pad_frames",
    "pad_hidden",
    "real_frames",
]

_OWNER = "audio:ltdnn-probe"


@dataclass
class HiddenStates:
    """Per-item hidden states of one split.

    ``items[i]`` is ``[T_i, sum(widths)]`` (float16, real frames only): the ``L`` layers,
    aligned in time, side by side; ``widths`` gives each layer's width.
    """

    items: list[Tensor]
    y: Tensor
    widths: tuple[int, ...]

    def subset(self, index: Tensor) -> HiddenStates:
        """The items at ``index``."""
        return HiddenStates([self.items[int(i)] for i in index], self.y[index], self.widths)


def _align(h: Tensor, frames: int) -> Tensor:
    """Resample ``[B, T_l, D]`` to ``frames`` steps (average pooling down, linear up)."""
    if h.shape[1] == frames:
        return h
    x = h.transpose(1, 2)
    if h.shape[1] > frames:
        x = F.adaptive_avg_pool1d(x, frames)
    else:
        x = F.interpolate(x, size=frames, mode="linear", align_corners=False)
    return x.transpose(1, 2)


def hidden_of(owner: str, out: EncoderOutput, split: str) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """``(frames [B, T, sum D_l] on the CPU, mask [B, T], widths)`` of one encoder output.

    Every hidden state (or the frame tokens, as one layer, when there are none) is
    resampled to the time steps of the output's ``mask`` (the tokens' resolution), so
    encoders whose layers downsample in time (CNNs) work too.

    Raises:
        ValueError: The output has neither hidden states nor tokens, or holds NaN/inf.
    """
    states = out.hidden_states or ((out.tokens,) if out.tokens is not None else None)
    if not states:
        raise ValueError(
            f"{owner}: the encoder returns neither hidden_states nor tokens; a "
            "layer-aware head needs frame-level outputs"
        )
    if any(h.dim() != 3 for h in states):
        shapes = [tuple(h.shape) for h in states]
        raise ValueError(f"{owner}: hidden states must be [B, T, D]; got shapes {shapes}")
    frames = int(out.mask.shape[1]) if out.mask is not None else int(states[-1].shape[1])
    cat = torch.cat([_align(h.float(), frames) for h in states], dim=-1).cpu()
    if not bool(torch.isfinite(cat).all()):
        raise ValueError(f"{owner}: hidden states of the {split!r} split hold NaN/inf")
    mask = out.mask if out.mask is not None else torch.ones(cat.shape[:2], dtype=torch.bool)
    return cat, mask.cpu().bool(), tuple(int(h.shape[-1]) for h in states)


def real_frames(cat: Tensor, mask: Tensor) -> list[Tensor]:
    """Each item's real frames ``[T_i, ...]`` as float16 (at least one frame)."""
    n_real = mask.sum(1).clamp_min(1)
    return [cat[b, : int(n_real[b])].half() for b in range(cat.shape[0])]


@torch.no_grad()
def collect_hidden_states(
    owner: str,
    encoder: nn.Module,
    data: DataSplits,
    split: str,
    runtime: Runtime,
    batch_size: int = 64,
) -> HiddenStates:
    """Run the frozen encoder over ``split`` and keep every item's real frames.

    Raises:
        ValueError: The encoder returns neither hidden states nor tokens, or NaN/inf.
    """
    loader = torch.utils.data.DataLoader(
        data.split(split), batch_size=batch_size, shuffle=False, collate_fn=data.collate
    )
    was_training = encoder.training
    encoder.eval()
    items: list[Tensor] = []
    labels: list[Tensor] = []
    widths: tuple[int, ...] = ()
    try:
        for x, y in loader:
            with runtime.autocast():
                out = encoder(to_device(x, runtime.device))
            cat, mask, widths = hidden_of(owner, out, split)
            items.extend(real_frames(cat, mask))
            labels.append(torch.as_tensor(y).reshape(-1).cpu())
    finally:
        encoder.train(was_training)
    return HiddenStates(items, torch.cat(labels), widths)


def pad_frames(items: list[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """Pad ``[T_i, F]`` items into ``[B, T_max, F]`` (float32) and a mask ``[B, T_max]``."""
    t_max = max(int(h.shape[0]) for h in items)
    out = torch.zeros(len(items), t_max, int(items[0].shape[1]))
    mask = torch.zeros(len(items), t_max, dtype=torch.bool)
    for b, h in enumerate(items):
        out[b, : h.shape[0]] = h.float()
        mask[b, : h.shape[0]] = True
    return out.to(device), mask.to(device)


def pad_hidden(
    items: list[Tensor], widths: tuple[int, ...], device: torch.device
) -> tuple[list[Tensor], Tensor]:
    """Padded layers (``L`` tensors ``[B, T_max, D_l]``) and the mask ``[B, T_max]``."""
    cat, mask = pad_frames(items, device)
    return list(torch.split(cat, list(widths), dim=-1)), mask


def _batches(n: int, size: int, gen: torch.Generator | None) -> list[Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return list(torch.split(order, size))


class LTDNNProbe:
    """Speaker-ID and verification through an L-TDNN head (see the module docstring).

    Metrics: ``ltdnn_acc``, ``ltdnn_val_acc``, ``ltdnn_eer``, ``ltdnn_min_dcf``,
    ``ltdnn_best_epoch``.

    Args:
        flag: The per-item flag to classify (the speaker).
        channels: TDNN width.
        embed_dim: Speaker-embedding size.
        epochs: Training epochs (the best validation epoch is kept).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: Clips per step.
        val_fraction: Share of ``train`` carved out for validation without a ``val`` split.
        max_nontarget: Non-target verification trials kept (seeded sample).
    """

    def __init__(
        self,
        flag: Annotated[str, Field(min_length=1)] = "speaker",
        channels: PositiveInt = 128,
        embed_dim: PositiveInt = 128,
        epochs: PositiveInt = 15,
        lr: Annotated[float, Field(gt=0)] = 1e-3,
        weight_decay: Annotated[float, Field(ge=0)] = 1e-4,
        batch_size: PositiveInt = 64,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        max_nontarget: PositiveInt = 100_000,
    ) -> None:
        for name, value in (("channels", channels), ("embed_dim", embed_dim), ("epochs", epochs)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{_OWNER}: {name}={value!r} must be an integer >= 1")
        if not 0 < val_fraction < 1 or lr <= 0 or weight_decay < 0:
            raise ValueError(
                f"{_OWNER}: need 0 < val_fraction < 1, lr > 0, weight_decay >= 0; got "
                f"{val_fraction!r}, {lr!r}, {weight_decay!r}"
            )
        self.flag, self.channels, self.embed_dim = flag, channels, embed_dim
        self.epochs, self.lr, self.weight_decay = epochs, float(lr), float(weight_decay)
        self.batch_size, self.val_fraction = batch_size, float(val_fraction)
        self.max_nontarget = max_nontarget

    def _labels(self, data: DataSplits, split: str, hs: HiddenStates) -> HiddenStates:
        flag = data.flag(split, self.flag)
        y = torch.as_tensor(flag).reshape(-1).long() if flag is not None else hs.y.long()
        if flag is None and data.task not in ("verification", "classification"):
            raise ValueError(f"{_OWNER}: the {split!r} split has no {self.flag!r} flag")
        if int((y < 0).sum()):
            raise ValueError(f"{_OWNER}: items of the {split!r} split lack a {self.flag!r} label")
        return HiddenStates(hs.items, y, hs.widths)

    def _run(self, head: LTDNN, hs: HiddenStates, dev: torch.device) -> tuple[Tensor, Tensor]:
        """Embeddings and predictions of every item (eval mode)."""
        head.eval()
        embs, preds = [], []
        with torch.no_grad():
            for idx in _batches(len(hs.items), 256, None):
                x, mask = pad_hidden([hs.items[int(i)] for i in idx], hs.widths, dev)
                emb, logits = head(x, mask)
                embs.append(emb.cpu())
                preds.append(logits.argmax(1).cpu())
        return torch.cat(embs), torch.cat(preds)

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Train the head on ``train``, select on validation, report on ``test``.

        Raises:
            ValueError: No train or test split, missing labels, or unusable outputs.
        """
        for split in ("train", "test"):
            if getattr(data, split, None) is None:
                raise ValueError(f"{_OWNER} needs a {split!r} split; the dataset has none")
        dev = ctx.runtime.device
        get = lambda s: self._labels(  # noqa: E731
            data, s, collect_hidden_states(_OWNER, encoder, data, s, ctx.runtime)
        )
        train, test = get("train"), get("test")
        if getattr(data, "val", None) is not None:
            fit, val = train, get("val")
        else:
            rest, held = stratified_split(train.y, self.val_fraction, ctx.seed)
            fit, val = train.subset(rest), train.subset(held)
        n_cls = int(max(int(fit.y.max()), int(val.y.max()), int(test.y.max()))) + 1
        n_layers, dims = len(fit.widths), list(fit.widths)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            gen = torch.Generator().manual_seed(ctx.seed)
            head = LTDNN(n_layers, dims, self.channels, embed_dim=self.embed_dim, num_classes=n_cls)
            head.to(dev)
            opt = torch.optim.AdamW(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            best = (-1.0, 0, copy.deepcopy(head.state_dict()))
            with torch.enable_grad():
                for epoch in range(1, self.epochs + 1):
                    head.train()
                    for idx in _batches(len(fit.items), self.batch_size, gen):
                        x, mask = pad_hidden([fit.items[int(i)] for i in idx], fit.widths, dev)
                        _, logits = head(x, mask)
                        loss = F.cross_entropy(logits, fit.y[idx].to(dev))
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                    acc = accuracy(self._run(head, val, dev)[1], val.y)
                    if acc > best[0]:
                        best = (acc, epoch, copy.deepcopy(head.state_dict()))
        head.load_state_dict(best[2])
        emb, pred = self._run(head, test, dev)
        centre = self._run(head, val, dev)[0].mean(0, keepdim=True)  # label-free centring
        pairs, labels = build_trials(test.y, self.max_nontarget, ctx.seed)
        scores = cosine_scores(emb - centre, pairs)
        ver = summary(scores, labels)
        weights = [round(float(w), 4) for w in head.layer_weights.detach().cpu()]
        ctx.record(
            ltdnn={
                "flag": self.flag,
                "layers": n_layers,
                "layer_weights": weights,
                "selection": "best validation accuracy over epochs",
                "trials": int(labels.numel()),
            }
        )
        write_curves(ctx, "ltdnn", {"ltdnn": (scores, labels)}, f"L-TDNN, {len(labels)} trials")
        return {
            "ltdnn_acc": accuracy(pred, test.y),
            "ltdnn_val_acc": best[0],
            "ltdnn_best_epoch": float(best[1]),
            "ltdnn_eer": ver["eer"],
            "ltdnn_min_dcf": ver["min_dcf"],
        }
