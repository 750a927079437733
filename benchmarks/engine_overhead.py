"""Overhead of the selfsup engine over a hand-written PyTorch training loop.

The same work through both paths: Fashion-MNIST training images (flattened, first
``--items``), ``core:mlp`` (784 -> 512 -> 512 -> 128, BatchNorm), ``core:noise-mask``
views, ``core:simclr`` (NT-Xent, temperature 0.2), AdamW with one warmup epoch then
cosine, batch 256, ``--epochs`` epochs.

(a) hand: a plain loop (DataLoader with shuffle, views, loss, backward, step, scheduler
    step, ``loss.item()`` per step), what a researcher writes for one experiment.
(b) engine: ``run_experiment`` with the ``core:minibatch`` routine and its defaults:
    distributed sampler, TrainStepper (NaN check, grad-scaler hooks), metrics.jsonl every
    10 steps, an atomic checkpoint every epoch, progress bar (to a non-terminal console).

Timed: the training of each path (model construction and evaluation excluded; the
engine's time is the routine's whole ``fit``, checkpoints included), both as wall time
and as this process's CPU time (``time.process_time``: far less sensitive to other
processes on a shared machine; with one torch thread it is the work done). The two
paths alternate for ``--repeats`` pairs; the figures are ratios of medians. Results:
``benchmarks/results/engine_overhead.json`` (the README section is written by hand).

Run from the repository root (needs Debian's ``dataset-fashion-mnist``):

    nice -n 10 .venv/bin/python benchmarks/engine_overhead.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from selfsup.builtin.encoders import MLP
from selfsup.builtin.objectives.infonce import SimCLR
from selfsup.builtin.views import NoiseMask
from selfsup.config import ScheduleConfig, load_config_text
from selfsup.engine.loop import MiniBatch
from selfsup.engine.optim import build_scheduler
from selfsup.engine.results import write_json_atomic
from selfsup.engine.runner import run_experiment
from selfsup.engine.seeding import seed_everything
from torch.utils.data import DataLoader, TensorDataset

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
RESULTS = Path(__file__).resolve().parent / "results"
WIDTHS, EMBED, BATCH, LR, TEMP = (512, 512), 128, 256, 1e-3, 0.2


def load_images(n: int) -> np.ndarray:
    with gzip.open(FMNIST, "rb") as handle:
        raw = handle.read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 784)[:n]
    return images.astype(np.float32) / 255.0


_FIT_TIMES: list[tuple[float, float]] = []


def _timed_fit(fit):  # type: ignore[no-untyped-def]
    """Wrap ``MiniBatch.fit`` to record its (wall, CPU) seconds."""

    def wrapper(self, ctx):  # type: ignore[no-untyped-def]
        wall, cpu = time.perf_counter(), time.process_time()
        fit(self, ctx)
        _FIT_TIMES.append((time.perf_counter() - wall, time.process_time() - cpu))

    return wrapper


MiniBatch.fit = _timed_fit(MiniBatch.fit)  # type: ignore[method-assign]


def hand_loop(x: torch.Tensor, epochs: int, seed: int) -> tuple[float, float]:
    """The plain PyTorch loop; returns its training (wall, CPU) seconds."""
    seed_everything(seed)
    encoder = MLP(in_dim=784, widths=WIDTHS, embed_dim=EMBED)
    objective = SimCLR(embed_dim=EMBED, temperature=TEMP)
    views = NoiseMask()
    params = [*encoder.parameters(), *objective.parameters()]
    start, cpu = time.perf_counter(), time.process_time()
    loader = DataLoader(
        TensorDataset(x, torch.zeros(len(x))),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.AdamW(params, lr=LR)
    steps = len(loader)
    sched = build_scheduler(opt, ScheduleConfig(warmup_epochs=1), epochs * steps, steps)
    encoder.train()
    objective.train()
    losses = []
    for _ in range(epochs):
        for xb, _y in loader:
            out = objective(encoder, views(xb))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            sched.step()
            losses.append(out.loss.item())
    elapsed = (time.perf_counter() - start, time.process_time() - cpu)
    assert all(np.isfinite(losses))
    return elapsed


def engine_run(
    npz: Path, out: Path, epochs: int, seed: int, progress: bool
) -> tuple[tuple[float, float], int]:
    """The engine path; returns the routine's (wall, CPU) seconds and its steps."""
    cfg = load_config_text(
        f"""
name: overhead
output_dir: {out}
seeds: [{seed}]
baseline: false
data: {{id: core:arrays, params: {{path: {npz}, val_fraction: 0.0, test_fraction: 0.0}}}}
encoder: {{id: core:mlp, params: {{in_dim: 784, widths: {list(WIDTHS)}, embed_dim: {EMBED}}}}}
views: core:noise-mask
objective: {{id: core:simclr, params: {{temperature: {TEMP}}}}}
train:
  epochs: {epochs}
  batch_size: {BATCH}
  device: cpu
  optimizer: {{name: adamw, lr: {LR}}}
  schedule: {{warmup_epochs: 1}}
"""
    )
    result = run_experiment(cfg, console=Console(file=io.StringIO()), progress=progress)
    run = result.runs[0]
    assert run["status"] == "ok", run
    return _FIT_TIMES[-1], int(run["steps"])


def _ratio(engine: list[float], hand: list[float]) -> float:
    return statistics.median(engine) / statistics.median(hand)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=12800)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = load_images(args.items)
    hand: list[tuple[float, float]] = []
    engine: list[tuple[float, float]] = []
    steps = 0
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "fmnist.npz"
        np.savez(npz, x=x, y=np.full(len(x), -1, dtype=np.int64))  # unlabelled
        xt = torch.from_numpy(x)
        engine_run(npz, Path(tmp) / "warmup", 1, 0, True)  # imports, allocator warm-up
        hand_loop(xt, 1, 0)
        for rep in range(args.repeats):
            order = ["hand", "engine"] if rep % 2 == 0 else ["engine", "hand"]
            for which in order:
                if which == "hand":
                    hand.append(hand_loop(xt, args.epochs, rep))
                else:
                    t, steps = engine_run(npz, Path(tmp) / f"r{rep}", args.epochs, rep, True)
                    engine.append(t)
            print(
                f"pair {rep}: wall hand {hand[-1][0]:.2f}s engine {engine[-1][0]:.2f}s | "
                f"cpu hand {hand[-1][1]:.2f}s engine {engine[-1][1]:.2f}s"
            )
    wall = _ratio([e[0] for e in engine], [h[0] for h in hand])
    cpu = _ratio([e[1] for e in engine], [h[1] for h in hand])
    record = {
        "benchmark": "engine_overhead",
        "date": time.strftime("%Y-%m-%d"),
        "command": "nice -n 10 .venv/bin/python benchmarks/engine_overhead.py "
        f"--items {args.items} --epochs {args.epochs} --repeats {args.repeats} "
        f"--threads {args.threads}",
        "setup": {
            "data": f"Fashion-MNIST train, first {args.items} images, flattened",
            "model": f"core:mlp 784-{'-'.join(map(str, WIDTHS))}-{EMBED} + core:simclr",
            "views": "core:noise-mask (defaults)",
            "batch_size": BATCH,
            "epochs": args.epochs,
            "steps_per_run": steps,
            "torch_threads": args.threads,
            "repeats": args.repeats,
        },
        "hand_wall_s": [h[0] for h in hand],
        "engine_wall_s": [e[0] for e in engine],
        "hand_cpu_s": [h[1] for h in hand],
        "engine_cpu_s": [e[1] for e in engine],
        "overhead_cpu_pct": 100 * (cpu - 1),
        "overhead_wall_pct": 100 * (wall - 1),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "torch": torch.__version__,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(record, RESULTS / "engine_overhead.json")
    print(
        f"engine overhead: CPU time {record['overhead_cpu_pct']:+.1f}%, "
        f"wall time {record['overhead_wall_pct']:+.1f}% (ratios of medians over "
        f"{args.repeats} alternating pairs, {steps} steps each)"
    )


if __name__ == "__main__":
    main()
