"""Does poisoning add a per-step cost to pretraining? (issue 10: "measured").

``security:poison`` runs once, when the data is loaded (a data transform): it stamps the
trigger on the chosen items and flags them. What reaches every training step is the
same tensors plus a ``poisoned`` flag sliced into each batch's ``BatchMeta``. This
script measures both costs with selfsup's own runner (``run_experiment``), in one
process, on the same model, views, objective, seed and data:

* per step: the clean pipeline and the poisoned one (CTRL, 5% of the set) alternate for
  ``--repeats`` runs of ``--epochs`` epochs each (the order flips every repeat); the
  time per optimiser step is ``train_time_s / steps`` of each run; reported as medians
  and as the ratio poisoned / clean (1.0: no per-step cost).
* one-off: the transform's own time (``security:poison`` on the loaded splits), against
  one epoch of pretraining.

Data: a stratified 5000-image subset of Fashion-MNIST at 32x32 (Debian's
``dataset-fashion-mnist``); model: ``vision:small-cnn`` width 16, SimCLR, batch 256,
one torch thread (what ``examples/security/ctrl_fashion_mnist.yaml`` trains).

Run from the repository root:

    nice -n 10 .venv/bin/python benchmarks/security_poison_cost.py [--repeats 5]

Writes ``benchmarks/results/security_poison_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from selfsup import build_component, load_config_text, run_experiment
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
DATA = {
    "id": "vision:fashion-mnist",
    "params": {"size": 32, "train_size": 5000, "val_size": 1000, "test_size": 1000},
}
POISON = {
    "id": "security:poison",
    "params": {
        "trigger": {"id": "security:ctrl", "params": {"magnitude": 300}},
        "target": 0,
        "rate": 0.05,
    },
}
CONFIG = """
name: {name}
seeds: [0]
baseline: false
output_dir: {out}
data: {data}
encoder: {{id: vision:small-cnn, params: {{in_chans: 1, width: 16}}}}
views:
  id: vision:simclr
  params: {{scale: [0.2, 1.0], brightness: 0.4, contrast: 0.4, jitter_p: 0.8}}
objective: {{id: core:simclr, params: {{temperature: 0.5}}}}
evaluators: []
train: {{epochs: {epochs}, threads: 1, batch_size: 256, channels_last: true}}
"""


def _per_step(name: str, data: dict[str, Any], epochs: int, out: Path) -> float:
    """Seconds per optimiser step of one fresh run through ``run_experiment``."""
    cfg = load_config_text(CONFIG.format(name=name, out=out, data=json.dumps(data), epochs=epochs))
    result = run_experiment(cfg, progress=False, overwrite=True)
    run = result.runs[0]
    if run.get("status") != "ok":
        raise RuntimeError(f"{name}: {run.get('error')}")
    return float(run["train_time_s"]) / max(int(run["steps"]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    # One-off cost of the transform on the loaded data.
    splits = build_component("dataset", DATA)
    poison = build_component("transform", POISON)
    transform_s = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        poison(splits, seed)
        transform_s.append(time.perf_counter() - start)

    clean, poisoned = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in range(args.repeats):
            order = [("clean", DATA), ("poisoned", {**DATA, "transforms": [POISON]})]
            for name, data in order if r % 2 == 0 else order[::-1]:
                t = _per_step(name, data, args.epochs, out)
                (clean if name == "clean" else poisoned).append(t)
    ratios = [p / c for p, c in zip(poisoned, clean, strict=True)]
    steps_per_epoch = 5000 // 256 + (5000 % 256 > 0)
    result = {
        "data": DATA,
        "poison": POISON,
        "repeats": args.repeats,
        "epochs_per_run": args.epochs,
        "step_s_clean": clean,
        "step_s_poisoned": poisoned,
        "median_step_s_clean": statistics.median(clean),
        "median_step_s_poisoned": statistics.median(poisoned),
        "median_ratio_poisoned_over_clean": statistics.median(ratios),
        "ratios": ratios,
        "transform_s_median": statistics.median(transform_s),
        "transform_over_epoch": statistics.median(transform_s)
        / (statistics.median(poisoned) * steps_per_epoch),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": 1,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(result, RESULTS / "security_poison_cost.json")
    md = [
        "# Poisoning's cost to pretraining (benchmarks/security_poison_cost.py)",
        "",
        f"Fashion-MNIST 5000 x 32x32, small CNN width 16, SimCLR, batch 256, one thread; "
        f"{args.repeats} alternating runs of {args.epochs} epochs each (selfsup's runner).",
        "",
        "| pipeline | median s/step | runs |",
        "|---|---|---|",
        f"| clean | {result['median_step_s_clean']:.4f} | {', '.join(f'{t:.4f}' for t in clean)} |",
        f"| CTRL 5% | {result['median_step_s_poisoned']:.4f} | "
        f"{', '.join(f'{t:.4f}' for t in poisoned)} |",
        "",
        f"Per-step ratio poisoned / clean (median of paired runs): "
        f"**{result['median_ratio_poisoned_over_clean']:.3f}**.",
        f"One-off transform (stamp + flag 250 images): {result['transform_s_median'] * 1e3:.1f} ms "
        f"= {result['transform_over_epoch'] * 100:.2f}% of one epoch.",
        "",
    ]
    write_bytes_atomic("\n".join(md).encode(), RESULTS / "security_poison_cost.md")
    print("\n".join(md))


if __name__ == "__main__":
    main()
