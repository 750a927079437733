"""Medical quality: every objective vs random init vs a raw-intensity linear probe, in Dice.

For each example config ``examples/medical/<objective>_colin27.yaml`` and each seed:

1. pretrain with ``selfsup run`` on the config as it is (its data, encoder, views,
   objective and optimiser; ``--pretrain-epochs`` / ``--train-crops`` shorten it on a
   busy CPU, ``--set`` overrides any key, and the command line is recorded),
   evaluators off;
2. load the pretrained encoder from the run's checkpoint (``weights_only=True``) and
   score it with ``medical:segmentation`` (the config's parameters) at every label
   budget (1, 2, 4 labelled crops): fine-tune + sliding-window Dice on the right
   hemisphere (test) and on the left one without the labelled crops' voxels
   (validation: what recipes and protocols are chosen on);
3. the same for the same encoder from random init (per distinct encoder) and for the
   raw-intensity linear probe (``model: raw-linear``: a linear classifier of each
   voxel's 3^3 intensities, same crops, loss, steps and Dice).

Crops for a budget are drawn by the seed, identically for every arm. Mean ± std of
``dice_mean`` and ``val_dice_mean`` over seeds go to
``benchmarks/results/medical_quality.{json,md}``.

    OMP_NUM_THREADS=1 python benchmarks/medical_quality.py                       # full
    OMP_NUM_THREADS=1 python benchmarks/medical_quality.py --pretrain-epochs 1 \\
        --finetune-steps 60 --objectives voco genesis                            # short
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OBJECTIVES = ["voco", "swin_pretext", "genesis", "local_global", "masked_volume"]
#: Results layout: 2 = test and validation Dice per arm (``dice`` and ``val_dice``).
FORMAT = 2
PUBLISHED = (
    "MONAI SwinUNETR tutorial, BTCV with 6 labelled volumes: 63.1 (random init) -> 70.1 "
    "(self-supervised) mean Dice; a different dataset and compute scale, for orientation only"
)


def _seg_params(cfg: Any) -> dict[str, Any]:
    for ev in cfg.evaluators:
        if ev.id == "medical:segmentation":
            return dict(ev.params or {})
    return {}


def _dice(
    encoder: Any, data: Any, params: dict[str, Any], budget: int, seed: int
) -> tuple[float, float]:
    """``(test Dice, validation Dice)`` after the protocol's fine-tuning at ``budget`` crops."""
    from selfsup.interfaces import EvalContext
    from selfsup.runtime import Runtime
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=seed)
    evaluator = SegmentationFinetune(**{**params, "budget": budget, "save_masks": False})
    metrics = evaluator.evaluate(encoder, data, ctx)
    return float(metrics["dice_mean"]), float(metrics["val_dice_mean"])


def cache_key(path: Path, overrides: list[str], seed: int) -> str:
    """Digest of what pretraining depends on: the resolved config and the seed.

    Evaluators and the description are left out, and comments never reach the resolved
    config, so a new fine-tuning protocol or a rewritten header reuses the encoders.
    """
    import hashlib

    from selfsup import load_config

    cfg = load_config(path, overrides=overrides).model_dump(mode="json")
    pretraining = {k: v for k, v in cfg.items() if k not in ("evaluators", "description")}
    payload = json.dumps([pretraining, seed], sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def _pretrain(
    path: Path, seed: int, overrides: list[str], out: str, cache: Path | None = None
) -> dict[str, Any]:
    """Run the config's objective arm for one seed; returns the encoder's state dict.

    With ``cache``, the encoder is kept there under :func:`cache_key` and reused by
    later runs (another fine-tuning protocol re-scores the same pretrained encoders
    instead of pretraining again).
    """
    from selfsup import load_config, run_experiment

    if cache is not None:
        cached = cache / f"{path.stem}-seed{seed}-{cache_key(path, overrides, seed)}.pt"
        if cached.is_file():
            return torch.load(cached, weights_only=True, map_location="cpu")
        state = _pretrain(path, seed, overrides, out)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, cached)
        return state

    sets = [*overrides, f"seeds=[{seed}]", "baseline=false", "evaluators=[]", f"output_dir={out}"]
    cfg = load_config(path, overrides=sets)
    result = run_experiment(cfg, progress=False, overwrite=True)
    run = result.runs[0]
    if run["status"] != "ok":
        raise RuntimeError(f"{path.name} seed {seed}: {run}")
    ckpt = Path(out) / cfg.name / run["arm"] / f"seed-{seed}" / "checkpoints" / "last.pt"
    return torch.load(ckpt, weights_only=True, map_location="cpu")["encoder"]


def _stats(values: list[float]) -> dict[str, Any]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"values": values, "mean": statistics.mean(values), "std": std}


def _split_stats(scores: dict[int, list[tuple[float, float]]]) -> dict[str, Any]:
    """``{"dice": {budget: stats of test Dice}, "val_dice": {budget: stats of val Dice}}``."""
    return {
        key: {str(b): _stats([pair[i] for pair in pairs]) for b, pairs in scores.items()}
        for i, key in enumerate(("dice", "val_dice"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objectives", nargs="+", default=OBJECTIVES, choices=OBJECTIVES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for pretraining, as `selfsup run --set` takes them (e.g. "
        "objective.params.mask_ratio=0.75); recorded, and part of the cache key",
    )
    parser.add_argument("--train-crops", type=int, default=None)
    parser.add_argument("--finetune-steps", type=int, default=None)
    parser.add_argument(
        "--encoder-lr-scale",
        type=float,
        default=None,
        help="override the protocol's encoder_lr_scale (0: frozen encoder, decoder trained)",
    )
    parser.add_argument(
        "--encoder-frozen-fraction",
        type=float,
        default=None,
        help="override the protocol's encoder_frozen_fraction (LP-FT: decoder first)",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=None,
        help="override the protocol's draws: fine-tune on this many independent draws of "
        "labelled crops per seed and budget, and average their Dice",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep pretrained encoders here and reuse them (keyed by config text, overrides, seed)",
    )
    parser.add_argument(
        "--tag",
        default="",
        help="results go to medical_quality[_TAG].{json,md} (e.g. 'frozen' for a second protocol)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    from selfsup import load_config
    from selfsup.components import get_component

    overrides = list(args.set)
    if args.pretrain_epochs is not None:
        overrides.append(f"train.epochs={args.pretrain_epochs}")
    if args.train_crops is not None:
        overrides.append(f"data.params.train_crops={args.train_crops}")
    protocol = _protocol(
        overrides,
        {
            "steps": args.finetune_steps,
            "encoder_lr_scale": args.encoder_lr_scale,
            "encoder_frozen_fraction": args.encoder_frozen_fraction,
            "draws": args.draws,
        },
    )
    previous = _previous(args, overrides, protocol)
    rows = previous.get("objectives", {})
    randoms = previous.get("random_init", {})
    raw = previous.get("raw_linear_probe", {})
    data_cache: dict[str, Any] = {}
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="medical-quality-") as out:
        for name in args.objectives:
            path = ROOT / "examples" / "medical" / f"{name}_colin27.yaml"
            cfg = load_config(path, overrides=overrides)
            params = dict(protocol)
            key = json.dumps([cfg.data.id, cfg.data.params], sort_keys=True, default=str)
            if key not in data_cache:
                data_cache[key] = get_component("dataset", cfg.data.id).create(**cfg.data.params)
            data = data_cache[key]
            enc_key = json.dumps([cfg.encoder.id, cfg.encoder.params], sort_keys=True)
            spec = get_component("encoder", cfg.encoder.id)
            scores: dict[int, list[tuple[float, float]]] = {b: [] for b in args.budgets}
            for seed in args.seeds:
                state = _pretrain(path, seed, overrides, out, args.cache)
                encoder = spec.create(**(cfg.encoder.params or {}))
                encoder.load_state_dict(state)
                for b in args.budgets:
                    scores[b].append(_dice(encoder, data, params, b, seed))
                    print(f"{name} seed {seed} budget {b}: {scores[b][-1]}", flush=True)
            rows[name] = {
                "encoder": {"id": cfg.encoder.id, "params": cfg.encoder.params},
                "objective": {"id": cfg.objective.id, "params": cfg.objective.params},
                **_split_stats(scores),
                "random_init_key": enc_key,
                "segmentation": params,
            }
            if enc_key not in randoms:
                rand: dict[int, list[tuple[float, float]]] = {b: [] for b in args.budgets}
                for seed in args.seeds:
                    torch.manual_seed(seed)
                    encoder = spec.create(**(cfg.encoder.params or {}))
                    for b in args.budgets:
                        rand[b].append(_dice(encoder, data, params, b, seed))
                        print(f"random {cfg.encoder.id} seed {seed} budget {b}: {rand[b][-1]}")
                randoms[enc_key] = _split_stats(rand)
            if not raw:
                raw_params = {**params, "model": "raw-linear"}
                raw.update(
                    _split_stats(
                        {
                            b: [_dice(encoder, data, raw_params, b, s) for s in args.seeds]
                            for b in args.budgets
                        }
                    )
                )
            _write(args, overrides, protocol, rows, randoms, raw, start)


def _protocol(overrides: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one fine-tuning protocol of every example config (refuses a mix).

    Every row of the table must come from the same ``medical:segmentation``
    parameters, so configs that disagree are an error naming them. ``extra`` holds the
    command line's overrides of those parameters (``None``: the configs' value).
    """
    from selfsup import load_config

    seen: dict[str, dict[str, Any]] = {}
    for name in OBJECTIVES:
        cfg = load_config(
            ROOT / "examples" / "medical" / f"{name}_colin27.yaml", overrides=overrides
        )
        params = _seg_params(cfg)
        params.update({k: v for k, v in (extra or {}).items() if v is not None})
        params.pop("budget", None)
        seen[name] = params
    distinct = {json.dumps(p, sort_keys=True) for p in seen.values()}
    if len(distinct) != 1:
        raise SystemExit(
            "examples/medical/*_colin27.yaml disagree on the medical:segmentation protocol "
            f"({seen}); give every config the same parameters so the table compares like "
            "with like"
        )
    return next(iter(seen.values()))


def _previous(args: Any, overrides: list[str], protocol: dict[str, Any]) -> dict[str, Any]:
    """The results file's record if it was measured under the same protocol (seeds,
    budgets, overrides, fine-tuning parameters), else ``{}``: ``--objectives`` adds rows
    to the table instead of replacing it, and rows of another protocol are dropped,
    never mixed."""
    target = _target(args.tag, "json")
    if not target.is_file():
        return {}
    old = json.loads(target.read_text())
    same = (
        old.get("seeds"),
        old.get("budgets"),
        old.get("overrides"),
        old.get("finetune_steps_override"),
        old.get("protocol"),
        old.get("format"),
    ) == (args.seeds, args.budgets, overrides, args.finetune_steps, protocol, FORMAT)
    return old if same else {}


def _target(tag: str, suffix: str) -> Path:
    return RESULTS / f"medical_quality{'_' + tag if tag else ''}.{suffix}"


def _write(
    args: Any,
    overrides: list[str],
    protocol: dict[str, Any],
    rows: Any,
    randoms: Any,
    raw: Any,
    start: float,
) -> None:
    """Write the JSON and markdown results (after every objective: partial runs keep them).

    Rows another process wrote meanwhile under the same protocol are kept (two
    processes, each with its own ``--objectives``, fill one table).
    """
    old = _previous(args, overrides, protocol)
    rows = {**old.get("objectives", {}), **rows}
    randoms = {**old.get("random_init", {}), **randoms}
    raw = raw or old.get("raw_linear_probe", {})
    threads = os.environ.get("OMP_NUM_THREADS")
    command = " ".join([*([f"OMP_NUM_THREADS={threads}"] if threads else []), "python", *sys.argv])
    # The same table: keep the commands that filled it and the note written beside it.
    commands = old.get("commands") or ([old["command"]] if old else [])
    note = old.get("note")
    record = {
        "command": command,
        "commands": [*[c for c in commands if c != command], command],
        "seeds": args.seeds,
        "budgets": args.budgets,
        "overrides": overrides,
        "finetune_steps_override": args.finetune_steps,
        "protocol": protocol,
        "objectives": rows,
        "random_init": randoms,
        "raw_linear_probe": raw,
        "format": FORMAT,
        "published": PUBLISHED,
        "wall_s": time.time() - start,
        **({"note": note} if note else {}),
    }
    RESULTS.mkdir(exist_ok=True)
    target = _target(args.tag, "json")
    tmp = target.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, target)
    md = _target(args.tag, "md")
    tmp = md.with_suffix(f".md.{os.getpid()}.tmp")
    tmp.write_text(_markdown(record))
    os.replace(tmp, md)
    print(_markdown(record))


def _fmt(s: dict[str, Any]) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def _markdown(record: dict[str, Any]) -> str:
    budgets = [str(b) for b in record["budgets"]]
    lines = [
        "# Medical quality: mean Dice (x100, foreground regions) on the right hemisphere",
        "",
        f"Colin27 + AAL (7 regions), seeds {record['seeds']}, mean ± std. Pretraining "
        f"overrides: {record['overrides'] or 'none (configs as they are)'}; fine-tuning "
        f"steps override: {record['finetune_steps_override']}. "
        + (
            "Commands (each filled its rows): " + "; ".join(f"`{c}`" for c in record["commands"])
            if len(record.get("commands") or []) > 1
            else f"Command: `{record['command']}`"
        )
        + ".",
        *(["", record["note"]] if record.get("note") else []),
        "",
        "Fine-tuning: one `medical:segmentation` protocol for every row (the configs', "
        "examples/medical/*.yaml, with the command's overrides): "
        f"`{json.dumps(record['protocol'], sort_keys=True)}`; random "
        "init is the same encoder at the seed's initialisation, fine-tuned on the same "
        "crops; the raw probe is a linear map of each voxel's 3^3 intensities, trained "
        "the same way. Dice: MONAI `DiceMetric`, sliding window (overlap 0.5, gaussian).",
        "",
        "## Test: the right hemisphere",
        "",
        *_table(record, "dice", budgets),
        "",
        "## Validation: the left hemisphere without the labelled crops' voxels",
        "",
        "What choices of protocol and recipe are made on (`val_dice_mean` of "
        "`medical:segmentation`): the train hemisphere, scored only where fine-tuning saw "
        "no label.",
        "",
        *_table(record, "val_dice", budgets),
        "",
        f"Published reference: {record['published']}.",
        "",
    ]
    return "\n".join(lines)


def _table(record: dict[str, Any], key: str, budgets: list[str]) -> list[str]:
    """The markdown table of one score (``dice``: test, ``val_dice``) and its per-seed gaps."""
    head = " | ".join(f"{b} crop{'s' if b != '1' else ''}" for b in budgets)
    lines = [f"| arm | encoder | {head} |", "|---|---|" + "---|" * len(budgets)]
    for row in record["objectives"].values():
        rand = record["random_init"][row["random_init_key"]][key]
        enc = row["encoder"]["id"]
        lines.append(f"| {row['objective']['id']} | {enc} | {_cells(row[key], budgets)} |")
        lines.append(f"| random init (same encoder) | {enc} | {_cells(rand, budgets)} |")
    raw = record["raw_linear_probe"][key]
    lines.append(f"| raw-intensity linear probe | none | {_cells(raw, budgets)} |")
    lines += ["", "Per-seed gaps, pretrained minus random init (x100, seeds in order):", ""]
    for row in record["objectives"].values():
        rand = record["random_init"][row["random_init_key"]][key]
        gaps = "; ".join(
            f"{b}: "
            + " ".join(
                f"{100 * (p - r):+.1f}"
                for p, r in zip(row[key][b]["values"], rand[b]["values"], strict=True)
            )
            for b in budgets
        )
        lines.append(f"- {row['objective']['id']}: {gaps}")
    return lines


def _cells(stats: dict[str, Any], budgets: list[str]) -> str:
    return " | ".join(_fmt(stats[b]) for b in budgets)


if __name__ == "__main__":
    main()
