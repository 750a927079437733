"""CPU speed of a SimCLR training step with the small CNN: layout, batch size, threads.

One step = ``vision:simclr`` views of a uint8 batch of Fashion-MNIST images (28x28)
-> ``vision:small-cnn`` (0.39M parameters) on both views -> ``core:simclr`` projector
and NT-Xent -> backward -> AdamW step: what ``selfsup run`` does per batch. For each
setting (memory layout NCHW / channels_last, batch size, torch threads) the median of
``--steps`` steps after a warm-up is reported as images/s (an image = two views),
from wall time and from process CPU time (CPU time is robust to other processes on a
shared machine; with one thread images/CPU-second is the work rate). The share of the
step spent making views is reported too.

Run from the repository root (needs Debian's ``dataset-fashion-mnist``):

    nice -n 10 .venv/bin/python benchmarks/vision_cpu_speed.py [--steps 15]

Writes ``benchmarks/results/vision_cpu_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

import torch
from selfsup.builtin.objectives.infonce import SimCLR
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic
from selfsup_vision.datasets import fashion_mnist
from selfsup_vision.encoders import SmallCNN
from selfsup_vision.views import SimCLRViews

RESULTS = Path(__file__).resolve().parent / "results"


def measure(images: torch.Tensor, channels_last: bool, threads: int, steps: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    enc = SmallCNN(in_chans=1)
    if channels_last:
        enc = enc.to(memory_format=torch.channels_last)
    obj = SimCLR(256, hidden_dim=512, out_dim=128, temperature=0.2)
    views = SimCLRViews(scale=(0.2, 1.0))
    opt = torch.optim.AdamW([*enc.parameters(), *obj.parameters()], lr=1e-3)
    rows = []
    for i in range(steps + 3):
        w0, c0 = time.perf_counter(), time.process_time()
        v = views(images)
        w1 = time.perf_counter()
        out = obj(enc, v)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if i >= 3:
            rows.append((time.perf_counter() - w0, time.process_time() - c0, w1 - w0))
    wall = statistics.median(r[0] for r in rows)
    cpu = statistics.median(r[1] for r in rows)
    n = images.shape[0]
    return {
        "channels_last": channels_last,
        "batch": n,
        "threads": threads,
        "images_per_s_wall": n / wall,
        "images_per_cpu_s": n / cpu,
        "views_share": statistics.median(r[2] for r in rows) / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batches", default="128,256,512")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    data = fashion_mnist(val_size=0, train_size=2048, test_size=100)
    grid = itertools.product(
        (False, True),
        [int(b) for b in args.batches.split(",")],
        [int(t) for t in args.threads.split(",")],
    )
    rows = []
    for cl, batch, threads in grid:
        rows.append(measure(data.train.images[:batch], cl, threads, args.steps))
        print(rows[-1])
    result = {"load_avg_1m_at_end": os.getloadavg()[0], "cpus": os.cpu_count(), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, RESULTS / "vision_cpu_speed.json")
    lines = [
        "| layout | batch | threads | images/s (wall) | images per CPU-second | views share |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {'channels_last' if r['channels_last'] else 'NCHW'} | {r['batch']} "
            f"| {r['threads']} | {r['images_per_s_wall']:.0f} | {r['images_per_cpu_s']:.0f} "
            f"| {r['views_share']:.1%} |"
        )
    write_bytes_atomic(("\n".join(lines) + "\n").encode("utf-8"), RESULTS / "vision_cpu_speed.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
