"""Wall time of a small training loop by torch thread count, on this machine as it is.

What ``train.threads`` changes: the same steps (a small CNN on 28x28 inputs, batch 64,
AdamW) timed with 1 thread, with torch's own default (one per logical CPU) and with
selfsup's default (:func:`selfsup.engine.threads.default_threads`), alternating the
settings for ``--repeats`` rounds so that a change in the machine's load hits all of
them. With ``--busy N``, N extra processes spin on the CPU meanwhile (a shared machine).
Writes ``benchmarks/results/threads.json`` and ``threads.md``; figures are medians and
ratios against one thread.

    .venv/bin/python benchmarks/threads.py --steps 30 --repeats 5 --busy 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from selfsup.engine.threads import available_cpus, default_threads, physical_cores
from torch import nn

OUT = Path(__file__).resolve().parent / "results"


def _spin(stop: mp.Event) -> None:  # type: ignore[valid-type]
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1_000_003


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128),
    )  # fmt: skip


def _time(threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(64, 1, 28, 28)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="extra spinning processes")
    args = parser.parse_args()
    logical = os.cpu_count() or 1
    settings = {"1 thread": 1, f"torch default ({logical})": logical}
    settings[f"selfsup default ({default_threads()})"] = default_threads()
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    try:
        _time(1, 3)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in settings}
        for _ in range(args.repeats):
            for name, threads in settings.items():
                times[name].append(_time(threads, args.steps))
    finally:
        stop.set()
        for p in spinners:
            p.join(timeout=5)
    base = statistics.median(times["1 thread"])
    rows = [
        {
            "setting": name,
            "threads": settings[name],
            "median_s": statistics.median(values),
            "ratio_vs_1_thread": statistics.median(values) / base,
            "runs_s": values,
        }
        for name, values in times.items()
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {
        "machine": {
            "platform": platform.platform(),
            "logical_cpus": logical,
            "usable_cpus": available_cpus(),
            "physical_cores": physical_cores(),
            "load_1min_at_end": load,
            "busy_processes": args.busy,
            "torch": torch.__version__,
        },
        "steps": args.steps,
        "repeats": args.repeats,
        "rows": rows,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "threads.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Threads: {args.steps} steps of a small CNN, median of {args.repeats}, "
        f"{args.busy} busy process(es), load {load:.1f} on {logical} CPUs",
        "",
        "| setting | median wall (s) | vs 1 thread |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['setting']} | {r['median_s']:.2f} | {r['ratio_vs_1_thread']:.2f}x |" for r in rows
    ]
    (OUT / "threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
