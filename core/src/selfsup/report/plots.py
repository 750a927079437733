"""Plots of a report: training curves and a 2-D projection of embeddings (matplotlib, Agg)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from selfsup.report.runs import RunRecord, to_float, write_atomic

__all__ = ["plot_curves", "plot_embeddings", "project_2d", "require_matplotlib"]

#: At most this many points per embedding panel (a random subset, fixed seed).
MAX_POINTS = 2000


#: Step/epoch scalars about how training ran, not what it learned: plotted apart.
DIAGNOSTICS = frozenset(
    {"lr", "epoch_time_s", "items_per_s", "grad_norm", "step_time_s", "data_time_s", "scale"}
)
#: Loss panels whose arms' typical values differ by more than this use a log axis
#: (or one panel per arm when some values are not positive).
SCALE_RATIO = 10.0


def _curves(runs: list[RunRecord], kind: str) -> dict[str, dict[str, dict[float, list[float]]]]:
    """``{metric: {arm: {x: [value per seed]}}}`` from step (or epoch) records."""
    out: dict[str, dict[str, dict[float, list[float]]]] = {}
    for run in runs:
        for record in run.metrics:
            is_epoch = "epoch" in record
            if (kind == "epoch") != is_epoch:
                continue
            x = to_float(record.get(kind))
            if x is None:
                continue
            for key, value in record.items():
                y = to_float(value)
                if key in ("step", "epoch") or y is None or not math.isfinite(y):
                    continue
                out.setdefault(key, {}).setdefault(run.arm, {}).setdefault(x, []).append(y)
    return out


def _band(
    points: dict[float, list[float]],
) -> tuple[list[float], list[float], list[float], list[float]]:
    """``(xs, mean, low, high)``: the mean over seeds and a band of ± 1 std."""
    import statistics

    xs = sorted(points)
    mean = [statistics.fmean(points[x]) for x in xs]
    std = [statistics.pstdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
    return (
        xs,
        mean,
        [m - s for m, s in zip(mean, std, strict=True)],
        [m + s for m, s in zip(mean, std, strict=True)],
    )


def _scale_differs(series: dict[str, dict[float, list[float]]]) -> bool:
    import statistics

    typical = [
        abs(statistics.median(v for vs in pts.values() for v in vs)) for pts in series.values()
    ]
    typical = [t for t in typical if t > 0]
    return len(typical) > 1 and max(typical) / min(typical) > SCALE_RATIO


def _panels(curves: dict[str, dict[str, dict[float, list[float]]]], keys: list[str]) -> list[Any]:
    """``(title, {arm: points}, log_y)`` per panel.

    A metric whose typical values differ between arms by more than :data:`SCALE_RATIO`
    (losses of different objectives) gets a log axis, or one panel per arm when it has
    values <= 0.
    """
    panels: list[Any] = []
    for key in keys:
        series = curves[key]
        if not _scale_differs(series):
            panels.append((key, series, False))
        elif all(v > 0 for pts in series.values() for vs in pts.values() for v in vs):
            panels.append((f"{key} (log scale: the arms' scales differ)", series, True))
        else:
            panels += [(f"{key}: {arm}", {arm: pts}, False) for arm, pts in series.items()]
    return panels


def _arm_colours(plt: Any, arms: list[str]) -> dict[str, Any]:
    palette = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20")
    return {arm: palette(i % palette.N) for i, arm in enumerate(arms)}


def require_matplotlib() -> Any:
    """Import matplotlib with the Agg backend, or raise an ImportError saying how to get it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "selfsup report needs matplotlib: pip install 'selfsup[report]' "
            "(or pip install matplotlib)"
        ) from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    write_atomic(path, buf.getvalue())
    return path


def plot_curves(
    runs: list[RunRecord],
    out_dir: Path,
    kind: str,
    diagnostics: bool = False,
    arms: list[str] | None = None,
) -> Path | None:
    """One PNG, a panel per metric, per arm the mean over seeds with a ± 1 std band.

    Args:
        runs: The runs of the report.
        out_dir: Where the PNG is written.
        kind: ``"step"`` or ``"epoch"`` records.
        diagnostics: Plot the training diagnostics (:data:`DIAGNOSTICS`: learning
            rate, time, throughput) instead of the quality metrics (loss and the
            objective's terms).
        arms: The arms in the order of the legend (the config's); others follow.

    Returns:
        ``curves_<kind>s.png`` (``diagnostics_<kind>s.png``), or ``None`` if nothing logged.
    """
    curves = _curves(runs, kind)
    curves = {k: v for k, v in curves.items() if (k in DIAGNOSTICS) == diagnostics}
    if not curves:
        return None
    plt = require_matplotlib()
    keys = (["loss"] if "loss" in curves else []) + sorted(k for k in curves if k != "loss")
    panels = _panels(curves, keys)[:12]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.5 * cols, 3.2 * rows + 0.8), squeeze=False, layout="constrained"
    )
    seen = {arm for series in curves.values() for arm in series}
    order = [a for a in (arms or []) if a in seen] + sorted(seen - set(arms or []))
    colour = _arm_colours(plt, order)
    for ax, (title, series, log_y) in zip(axes.flat, panels, strict=False):
        for arm in [a for a in order if a in series]:
            xs, mean, low, high = _band(series[arm])
            few = len(xs) < 30
            ax.plot(xs, mean, color=colour[arm], marker="o" if few else None, markersize=4)
            if any(h > lo for lo, h in zip(low, high, strict=True)):
                ax.fill_between(xs, low, high, color=colour[arm], alpha=0.2, linewidth=0)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(kind)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colour[arm], marker="o", label=arm) for arm in order]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(4, len(order)), fontsize="small"
    )
    what = "training diagnostics" if diagnostics else "training curves"
    fig.suptitle(f"{what} per {kind} (train split): mean over seeds, band ± 1 std")
    name = f"{'diagnostics' if diagnostics else 'curves'}_{kind}s.png"
    try:
        return _save(fig, out_dir / name)
    finally:
        plt.close(fig)


def _read_npz(path: Path) -> dict[str, Any]:
    """The arrays of an ``.npz``, never unpickling (object arrays are refused).

    Raises:
        ValueError: What is wrong with the file, in selfsup's words (numpy's own advice
            to load a pickle "unsafely" is the wrong advice for a damaged run file).
    """
    import zipfile
    import zlib

    import numpy as np

    with path.open("rb") as handle:
        head = handle.read(4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError("not a readable .npz (not a zip archive)")
    arrays: dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                try:
                    arrays[key] = data[key]
                except ValueError as exc:
                    if "pickle" not in str(exc).lower() and "object" not in str(exc).lower():
                        raise
                    raise ValueError(
                        f"array {key!r} holds Python objects (dtype=object), which are never "
                        "unpickled"
                    ) from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"not a readable .npz (truncated or damaged: {exc})") from None
    return arrays


def _load_embeddings(path: Path) -> tuple[Any, Any, str | None]:
    """``(features [N, D], labels [N] or None, split)`` from a run's ``embeddings.npz``.

    Raises:
        ValueError: The file cannot be read or holds no 2-D array (says why).
    """
    arrays = _read_npz(path)
    feats = next(
        (arrays[k] for k in ("test", "embeddings", "features", "x", "z") if k in arrays), None
    )
    if feats is None:
        feats = next((a for a in arrays.values() if a.ndim == 2), None)
    labels = next((arrays[k] for k in ("labels", "y", "test_labels") if k in arrays), None)
    if feats is None or feats.ndim != 2 or not len(feats):
        raise ValueError(f"no non-empty 2-D embedding array (keys: {', '.join(arrays) or 'none'})")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(feats)):
        labels = None  # not one class per item (a label map, a multi-label vector)
    split = arrays.get("split")
    return feats, labels, (str(split) if split is not None and split.ndim == 0 else None)


def project_2d(feats: Any, method: str = "pca", seed: int = 0) -> Any:
    """Project ``[N, D]`` features to ``[N, 2]`` with PCA (torch) or t-SNE (scikit-learn)."""
    import numpy as np

    x = np.asarray(feats, dtype=np.float32)
    x = np.nan_to_num(x - x.mean(0, keepdims=True))
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as exc:
            raise ImportError(
                "--projection tsne needs scikit-learn: pip install scikit-learn"
            ) from exc
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
    import torch

    t = torch.from_numpy(x)
    if t.shape[1] < 2:
        return np.concatenate([x, np.zeros_like(x)], 1)[:, :2]
    torch.manual_seed(seed)
    _, _, v = torch.pca_lowrank(t, q=2, center=False)
    return (t @ v[:, :2]).numpy()


def plot_embeddings(
    runs: list[RunRecord], out_dir: Path, method: str = "pca", warnings: list[str] | None = None
) -> Path | None:
    """A panel per arm (its first seed with readable embeddings), points coloured by label.

    Args:
        runs: The runs of the report.
        out_dir: Where the PNG is written.
        method: ``"pca"`` or ``"tsne"``.
        warnings: If given, one message per ``embeddings.npz`` that cannot be read (it is
            skipped; the arm's next seed is used if it has one).
    """
    import numpy as np

    chosen: dict[str, tuple[RunRecord, Any, Any]] = {}
    splits: set[str] = set()
    for run in runs:
        if run.embeddings is None or run.arm in chosen:
            continue
        try:
            feats, labels, split = _load_embeddings(run.embeddings)
            splits.add(split or "unknown")
        except (OSError, ValueError) as exc:
            if warnings is not None:
                warnings.append(
                    f"{run.embeddings}: {exc}; left out of the embedding plot (re-run the "
                    "run to rewrite it, or delete the file)"
                )
            continue
        chosen[run.arm] = (run, feats, labels)
    if not chosen:
        return None
    plt = require_matplotlib()
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False, layout="tight"
    )
    rng = np.random.default_rng(0)
    labelled = 0
    for ax, (arm, (run, feats, labels)) in zip(axes.flat, chosen.items(), strict=False):
        index = np.arange(len(feats))
        if len(index) > MAX_POINTS:
            index = np.sort(rng.choice(index, MAX_POINTS, replace=False))
        xy = project_2d(feats[index], method)
        colours = None if labels is None else np.asarray(labels)[index]
        labelled += colours is not None
        style = {"c": colours, "cmap": "tab10"} if colours is not None else {}
        points = ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.8, **style)
        if colours is not None and len(np.unique(colours)) <= 10:
            ax.legend(*points.legend_elements(), fontsize="x-small", title="label", loc="best")
        ax.set_title(f"{arm} ({run.label})", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    # Embeddings of datasets without one class per item (segmentation, unlabelled)
    # are saved without labels: those panels are plain scatters.
    how = "coloured by label" if labelled == len(chosen) else "coloured by label where known"
    split = ", ".join(sorted(splits))
    fig.suptitle(
        f"{split} split embeddings (first seed per arm), {method.upper()} to 2-D, "
        f"{how if labelled else 'no labels'}"
    )
    try:
        return _save(fig, out_dir / f"embeddings_{method}.png")
    finally:
        plt.close(fig)
