"""``audio:verification``: speaker verification by cosine scoring of frozen embeddings.

Protocol:

* Embeddings are the encoder's pooled outputs of one split (``test`` by default),
  through :func:`selfsup.evaluation.embed_split` (the dataset's own collate and padding).
* Optionally centred (or standardised) with statistics of the ``train`` split's
  embeddings: label-free, the usual "mean subtraction" of speaker verification.
* Trials come from a trial list file, from the dataset's own test trials
  (``meta["trials"]``, rows ``(i, j, same)`` over the test split) when it has them, or
  are built from the split's speaker identities (the ``speaker`` flag, or ``y`` when
  the dataset's task is ``verification``): every same-speaker pair is a target trial;
  non-target pairs are all different-speaker pairs when there are at most
  ``max_nontarget`` of them, else a uniform sample of that many, drawn with the run's
  seed (deterministic).
* Score = cosine similarity; EER (interpolated at the ROC crossing) and normalised minDCF
  (``P_target``, ``C_miss``, ``C_fa`` as given, default 0.01/1/1) from
  :mod:`selfsup_audio.metrics`. The protocol, its parameters and the trial counts are
  recorded (``ctx.record``); scores (CSV) and the DET curve (PNG) are run artefacts.
* Metric names are ``eer``, ``min_dcf``, ... for the test split and carry the split's
  name otherwise (``val_eer``, ``val_min_dcf``), so one arm can list the evaluator for
  ``val`` (to choose settings on) and ``test`` (to report) side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.evaluation import embed_split
from torch import Tensor

from selfsup_audio.metrics import DCF_DEFAULTS, summary, write_curves

if TYPE_CHECKING:
    from selfsup.interfaces import DataSplits, EvalContext
    from torch import nn

__all__ = ["Verification", "build_trials", "cosine_scores", "read_trials", "speaker_ids"]

_OWNER = "audio:verification"


def speaker_ids(owner: str, data: DataSplits, split: str, flag: str, y: Tensor) -> Tensor:
    """The identity of every item of ``split``: its ``flag`` flag, or ``y`` for verification.

    Raises:
        ValueError: Neither the flag nor identity labels exist, or some are unknown (-1).
    """
    ids = data.flag(split, flag)
    if ids is None:
        if data.task != "verification":
            have = sorted(data.flags.get(split, {}))
            raise ValueError(
                f"{owner}: the {split!r} split has no {flag!r} flag (its flags: {have}) and "
                f"the dataset's task is {data.task!r}, not 'verification'; set flag: to the "
                "flag naming the speaker, or give a trials_file"
            )
        ids = y
    ids = torch.as_tensor(ids).reshape(-1).long()
    if int((ids < 0).sum()):
        raise ValueError(
            f"{owner}: {int((ids < 0).sum())} items of the {split!r} split have no "
            f"{flag!r} identity (-1); every trial item needs one"
        )
    return ids


def build_trials(ids: Tensor, max_nontarget: int, seed: int) -> tuple[Tensor, Tensor]:
    """All same-identity pairs and (a seeded sample of) different-identity pairs.

    Args:
        ids: Identity of each item ``[N]``.
        max_nontarget: Keep every non-target pair up to this many, else sample this many.
        seed: Seed of the sample.

    Returns:
        ``pairs [M, 2]`` (``i < j``) and ``labels [M]`` (1 target, 0 non-target).

    Raises:
        ValueError: No identity has two items, or there is only one identity.
    """
    n = ids.numel()
    i, j = torch.triu_indices(n, n, offset=1)
    same = ids[i] == ids[j]
    target = torch.stack([i[same], j[same]], 1)
    other = torch.stack([i[~same], j[~same]], 1)
    if target.shape[0] == 0 or other.shape[0] == 0:
        raise ValueError(
            f"{_OWNER}: {n} items of {ids.unique().numel()} identities give "
            f"{target.shape[0]} target and {other.shape[0]} non-target pairs; verification "
            "needs at least two identities and two items of one"
        )
    if other.shape[0] > max_nontarget:
        gen = torch.Generator().manual_seed(int(seed))
        keep = torch.randperm(other.shape[0], generator=gen)[:max_nontarget].sort().values
        other = other[keep]
    pairs = torch.cat([target, other])
    labels = torch.cat([torch.ones(target.shape[0]), torch.zeros(other.shape[0])]).long()
    return pairs, labels


def read_trials(path: str | Path, n_items: int, names: list[str] | None) -> tuple[Tensor, Tensor]:
    """Read a trial list: one ``label a b`` per line (``#`` comments, blank lines skipped).

    ``label`` is ``1``/``target``/``0``/``nontarget``; ``a`` and ``b`` are item indices of
    the split, or file names when the split lists its files (``names``, matched on the full
    relative path or on the base name).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A line is malformed or names an unknown item (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{_OWNER}: trials_file {str(path)!r} does not exist; give a text file with "
            "one 'label a b' trial per line"
        )
    lookup: dict[str, int] = {}
    for k, name in enumerate(names or []):
        lookup.setdefault(name, k)
        lookup.setdefault(Path(name).name, k)
    labels_map = {"1": 1, "target": 1, "0": 0, "nontarget": 0, "non-target": 0}
    pairs, labels = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        where = f"{_OWNER}: {path}:{lineno}"
        if len(parts) != 3 or parts[0].lower() not in labels_map:
            raise ValueError(f"{where}: expected 'label a b' (label 1/0), got {line.strip()!r}")
        idx = []
        for tok in parts[1:]:
            if tok.isdigit() and int(tok) < n_items:
                idx.append(int(tok))
            elif tok in lookup:
                idx.append(lookup[tok])
            else:
                raise ValueError(
                    f"{where}: unknown item {tok!r}: give an index in [0, {n_items}) or a "
                    "file name of the split"
                )
        pairs.append(idx)
        labels.append(labels_map[parts[0].lower()])
    if not pairs:
        raise ValueError(f"{_OWNER}: trials_file {str(path)!r} holds no trial")
    return torch.tensor(pairs, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


def cosine_scores(emb: Tensor, pairs: Tensor, chunk: int = 65536) -> Tensor:
    """Cosine similarity of every pair ``[M]`` (chunked so memory stays small)."""
    unit = F.normalize(emb.float(), dim=1)
    out = [(unit[p[:, 0]] * unit[p[:, 1]]).sum(1) for p in torch.split(pairs, chunk)]
    return torch.cat(out) if out else torch.zeros(0)


def _split_names(split: object) -> list[str] | None:
    """The file names of a split, when the dataset exposes them (``paths``/``files``)."""
    for attr in ("paths", "files"):
        names = getattr(split, attr, None)
        if names is not None:
            return [str(n) for n in names]
    return None


class Verification:
    """Speaker verification EER and minDCF by cosine scoring (see the module docstring).

    Metrics: ``eer`` and ``min_dcf`` (lower is better), ``eer_threshold``,
    ``target_trials``, ``nontarget_trials``.

    Args:
        split: The split whose items form the trials.
        flag: The per-item flag holding the speaker identity.
        max_nontarget: Non-target pairs kept (all of them when there are fewer).
        trials_file: A trial list (``label a b`` per line) instead of built trials.
        normalize: ``none``, ``center`` (subtract the train embeddings' mean) or
            ``standardize`` (also divide by their standard deviation).
        p_target: The minDCF target prior.
        c_miss: The minDCF cost of a miss.
        c_fa: The minDCF cost of a false alarm.
    """

    def __init__(
        self,
        split: Literal["train", "val", "test"] = "test",
        flag: str = "speaker",
        max_nontarget: PositiveInt = 100_000,
        trials_file: str | None = None,
        normalize: Literal["none", "center", "standardize"] = "center",
        p_target: Annotated[float, Field(gt=0, lt=1)] = DCF_DEFAULTS["p_target"],
        c_miss: Annotated[float, Field(gt=0)] = DCF_DEFAULTS["c_miss"],
        c_fa: Annotated[float, Field(gt=0)] = DCF_DEFAULTS["c_fa"],
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"{_OWNER}: split={split!r} is not one of train, val, test")
        if normalize not in ("none", "center", "standardize"):
            raise ValueError(
                f"{_OWNER}: normalize={normalize!r} is not one of none, center, standardize"
            )
        if not isinstance(max_nontarget, int) or max_nontarget < 1:
            raise ValueError(f"{_OWNER}: max_nontarget={max_nontarget!r} must be an integer >= 1")
        if not 0 < p_target < 1 or c_miss <= 0 or c_fa <= 0:
            raise ValueError(
                f"{_OWNER}: p_target={p_target!r} must be in (0, 1) and c_miss={c_miss!r}, "
                f"c_fa={c_fa!r} must be > 0"
            )
        self.split, self.flag, self.max_nontarget = split, flag, max_nontarget
        self.trials_file, self.normalize = trials_file, normalize
        self.dcf = {"p_target": float(p_target), "c_miss": float(c_miss), "c_fa": float(c_fa)}

    def _normalised(
        self, encoder: nn.Module, data: DataSplits, emb: Tensor, ctx: EvalContext
    ) -> Tensor:
        if self.normalize == "none":
            return emb
        ref = emb
        if self.split != "train":
            got = embed_split(_OWNER, encoder, data, "train", ctx.runtime)
            ref = got[0] if got is not None else emb
        emb = emb - ref.mean(0, keepdim=True)
        if self.normalize == "standardize":
            emb = emb / ref.std(0, keepdim=True).clamp_min(1e-6)
        return emb

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Score the trials and return EER, minDCF and the trial counts.

        Raises:
            ValueError: The split is missing, identities are missing, too few identities,
                or the trial list is malformed.
            FileNotFoundError: ``trials_file`` does not exist.
        """
        got = embed_split(_OWNER, encoder, data, self.split, ctx.runtime)
        if got is None:
            raise ValueError(
                f"{_OWNER}: the dataset has no {self.split!r} split; set split: to one it has"
            )
        emb, y = got
        if self.trials_file is not None:
            names = _split_names(data.split(self.split))
            pairs, labels = read_trials(self.trials_file, emb.shape[0], names)
            source = f"trial list {self.trials_file}"
        elif self.split == "test" and data.meta.get("trials"):
            table = torch.as_tensor(data.meta["trials"], dtype=torch.long).reshape(-1, 3)
            if int(table[:, :2].max()) >= emb.shape[0] or int(table[:, :2].min()) < 0:
                raise ValueError(
                    f"{_OWNER}: the dataset's meta['trials'] names items outside the test "
                    f"split's {emb.shape[0]} items"
                )
            pairs, labels = table[:, :2], table[:, 2]
            source = "the dataset's trials (meta['trials'])"
        else:
            ids = speaker_ids(_OWNER, data, self.split, self.flag, y)
            pairs, labels = build_trials(ids, self.max_nontarget, ctx.seed)
            source = (
                f"all same-{self.flag} pairs + up to {self.max_nontarget} different-"
                f"{self.flag} pairs (seed {ctx.seed})"
            )
        emb = self._normalised(encoder, data, emb, ctx)
        scores = cosine_scores(emb, pairs)
        out = summary(scores, labels, **self.dcf)
        ctx.record(
            protocol={
                "split": self.split,
                "scoring": "cosine",
                "normalize": self.normalize,
                "trials": source,
                "eer": "interpolated at the ROC crossing (fpr == fnr)",
                "min_dcf": {**self.dcf, "normalised": True},
                "target_trials": int(out["target_trials"]),
                "nontarget_trials": int(out["nontarget_trials"]),
            }
        )
        title = f"cosine, {self.split} split, {len(labels)} trials"
        write_curves(ctx, "verification", {"cosine": (scores, labels)}, title)
        if self.split != "test":
            return {f"{self.split}_{key}": value for key, value in out.items()}
        return out
