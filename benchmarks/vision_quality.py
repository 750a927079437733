"""Vision quality benchmark: Fashion-MNIST through ``selfsup run``, every arm measured alike.

Runs ``examples/vision/quality_fashion_mnist.yaml`` (full Fashion-MNIST: 55k train, 5k
validation carved from the training set, the official 10k test set) with the engine's
``run_experiment``: raw pixels, the small CNN at random init, and the small CNN
pretrained with SimCLR, Barlow Twins and VICReg. Every arm is scored the same way:
frozen encoder, ``core:linear-probe`` (weight decay chosen on validation), test accuracy
(``core:knn`` too).

Time budget: each objective gets at most ``--budget-s`` seconds of training (the
config's ``train.max_time_s``). So that the cosine schedule ends inside the budget,
the number of epochs is fitted to it: a few real training steps of each arm are timed
first (calibration) and ``epochs = floor(0.95 * budget / epoch_time)``; ``--epochs``
skips the calibration.

Writes ``benchmarks/results/vision_quality.json`` and ``vision_quality.md`` (accuracy,
training wall time, images/s, epochs; the targets and whether they hold), or
``vision_quality_<tag>.*`` with ``--tag`` (short verification runs).

Run from the repository root (needs Debian's ``dataset-fashion-mnist``), on an
otherwise idle machine for the recorded table:

    .venv/bin/python benchmarks/vision_quality.py                      # 30 min per objective
    .venv/bin/python benchmarks/vision_quality.py --budget-s 120 --tag quick   # check
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from selfsup.config import apply_overrides, expand_arms, load_config_text
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic
from selfsup.engine.runner import run_experiment
from selfsup.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "vision" / "quality_fashion_mnist.yaml"
RESULTS = ROOT / "benchmarks" / "results"
BEST_TARGET = 0.885  # best objective, linear probe test accuracy
MARGIN_TARGET = 0.02  # each objective over both baselines


def calibrate(arm: Any, steps: int = 8) -> float:
    """Seconds per training step of an arm (views + forward + backward + AdamW step)."""
    pm = get_plugin_manager()
    data = pm.get("dataset", arm.data.id).create(**arm.data.params)
    encoder = pm.get("encoder", arm.encoder.id).create(**arm.encoder.params)
    objective = pm.get("objective", arm.objective.id).create(
        embed_dim=encoder.embed_dim, **arm.objective.params
    )
    views = pm.get("views", arm.views.id).create(**arm.views.params)
    if callable(getattr(objective, "attach", None)):
        objective.attach(encoder)
    if arm.train.channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
    params = [*encoder.parameters(), *objective.parameters()]
    opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-4)
    batch = data.train.images[: arm.train.batch_size]
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        out = objective(encoder, views(batch))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        objective.on_step_end(i + 1, 100)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit_epochs(raw: dict[str, Any], budget_s: float, fixed: int | None, say: Any) -> None:
    """Set ``train.epochs`` and ``train.max_time_s`` of every pretraining arm in ``raw``."""
    cfg = load_config_text(yaml.safe_dump(raw), source=str(CONFIG))
    arms = {a.name: a for a in expand_arms(cfg)}
    for arm_raw in raw.get("arms", []):
        arm = arms[arm_raw["name"]]
        if not arm.pretrains:
            continue
        if fixed is not None:
            epochs = fixed
        else:
            step_s = calibrate(arm)
            steps_per_epoch = 55000 // arm.train.batch_size
            data_params = arm.data.params
            if data_params.get("train_size"):
                steps_per_epoch = int(data_params["train_size"]) // arm.train.batch_size
            epoch_s = step_s * max(1, steps_per_epoch) * 1.03
            epochs = max(1, math.floor(0.95 * budget_s / epoch_s))
            say(
                f"{arm.name}: {step_s * 1e3:.0f} ms/step, ~{epoch_s:.0f} s/epoch -> {epochs} epochs"
            )
        arm_raw.setdefault("train", {}).update(epochs=epochs, max_time_s=budget_s)


def summarise(result: Any, budget_s: float) -> dict[str, Any]:
    """Per-arm figures and the targets."""
    arms: dict[str, dict[str, Any]] = {}
    for run in result.runs:
        m = run.get("metrics", {})
        arms[run["arm"]] = {
            "status": run.get("status"),
            "linear_acc": m.get("linear_acc"),
            "linear_val_acc": m.get("linear_val_acc"),
            "knn_acc": m.get("knn_acc"),
            "train_time_s": run.get("train_time_s"),
            "eval_time_s": run.get("eval_time_s"),
            "epochs": run.get("epochs"),
            "images_per_s": run.get("items_per_s"),
        }
    baselines = [arms[n]["linear_acc"] for n in ("raw-pixels", "random-init") if n in arms]
    objectives = {n: a for n, a in arms.items() if n not in ("raw-pixels", "random-init")}
    accs = [a["linear_acc"] for a in objectives.values() if a["linear_acc"] is not None]
    best = max(accs) if accs else None
    bar = max(b for b in baselines if b is not None) if baselines else None
    return {
        "arms": arms,
        "budget_s": budget_s,
        "targets": {
            "best_objective_linear_acc": best,
            "best_target": BEST_TARGET,
            "best_ok": best is not None and best >= BEST_TARGET,
            "baseline_linear_acc": bar,
            "margin_target": MARGIN_TARGET,
            "margins": {
                n: (a["linear_acc"] - bar)
                if a["linear_acc"] is not None and bar is not None
                else None
                for n, a in objectives.items()
            },
            "margins_ok": bar is not None
            and all(
                a["linear_acc"] is not None and a["linear_acc"] >= bar + MARGIN_TARGET
                for a in objectives.values()
            ),
        },
    }


def markdown(summary: dict[str, Any], command: str) -> str:
    rows = [
        "| arm | linear probe test acc | kNN test acc | training wall time | images/s | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for name, a in summary["arms"].items():
        acc = f"{a['linear_acc'] * 100:.2f}%" if a["linear_acc"] is not None else a["status"]
        knn = f"{a['knn_acc'] * 100:.2f}%" if a["knn_acc"] is not None else "-"
        train = f"{a['train_time_s']:.0f} s" if a["train_time_s"] else "-"
        ips = f"{a['images_per_s']:.0f}" if a["images_per_s"] else "-"
        rows.append(f"| {name} | {acc} | {knn} | {train} | {ips} | {a['epochs'] or '-'} |")
    t = summary["targets"]
    best = t["best_objective_linear_acc"]
    shown = f"{best:.2%}" if best is not None else "no objective finished"
    rows += [
        "",
        f"Best objective >= {BEST_TARGET:.1%}: {'met' if t['best_ok'] else 'NOT met'} ({shown}); "
        f"every objective >= both baselines + {MARGIN_TARGET * 100:.0f} points: "
        f"{'met' if t['margins_ok'] else 'NOT met'}.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--budget-s", type=float, default=1800.0, help="training seconds per arm")
    ap.add_argument("--epochs", type=int, default=None, help="fixed epochs (no calibration)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: torch default)"
    )
    ap.add_argument("--output-dir", default="runs", help="where the run directories go")
    ap.add_argument("--tag", default="", help="suffix of the result files (short checks)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join(["python benchmarks/vision_quality.py", *sys.argv[1:]])
    raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    raw = apply_overrides(raw, [f"output_dir={args.output_dir}", *args.overrides])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw["name"] = f"{raw['name']}-{args.tag or 'full'}-{stamp}"
    fit_epochs(raw, args.budget_s, args.epochs, print)
    cfg = load_config_text(yaml.safe_dump(raw), source=args.config)
    start = time.perf_counter()
    result = run_experiment(cfg, source=args.config, progress=False)
    summary = summarise(result, args.budget_s)
    summary.update(
        experiment=str(result.output_dir),
        total_wall_s=time.perf_counter() - start,
        command=command.strip(),
        machine={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": os.getloadavg()[0],
            "device": str(cfg.train.get("device", "auto")),
        },
        config=raw,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "vision_quality" + (f"_{args.tag}" if args.tag else "")
    write_json_atomic(summary, RESULTS / f"{stem}.json")
    md = markdown(summary, command.strip())
    write_bytes_atomic(md.encode("utf-8"), RESULTS / f"{stem}.md")
    print(md)


if __name__ == "__main__":
    main()
