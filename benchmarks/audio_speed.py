"""SSAST pretraining speed: selfsup's training routine vs a hand-written PyTorch loop.

The same work through both paths: the FSDD training split (``audio:fsdd``, FSDD's
by-index split: 2,400 clips at 8 kHz, cropped to 1 s), the encoder and objective of
``examples/audio/ssast_fsdd.yaml`` (``audio:ssast`` frame patches, 40 mel bands, width
128, depth 4; ``audio:ssast`` objective, 75% cluster masking, InfoNCE + 10 x MSE, two
masked passes), batch 64, AdamW, ``--epochs`` epochs (``drop_last``: 37 steps each).

(a) hand: DataLoader (shuffle, the dataset's padding collate), objective, backward,
    optimiser step, ``loss.item()`` per step: what a researcher writes for one run.
(b) selfsup: ``run_experiment`` with the ``core:minibatch`` routine and its defaults
    (distributed sampler, NaN check, metrics.jsonl, an atomic checkpoint every epoch,
    progress bar to a non-terminal console).

Timed: the training only (the routine's whole ``fit``, checkpoints included; model
building, data loading and evaluation excluded), as wall time and as this process's CPU
time (far less sensitive to other processes on a shared machine). The paths alternate
for ``--repeats`` pairs; figures are medians, the overhead a ratio of medians. Clips/s =
clips trained / seconds. On a GPU (``--device cuda``) wall time is what counts, and
``--precision bf16`` measures bf16 autocast throughput.

Results go to ``benchmarks/results/audio_speed.json`` (one entry per device/precision,
earlier entries kept) and ``audio_speed.md``.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/audio_speed.py [--repeats 3]
    .venv/bin/python benchmarks/audio_speed.py --device cuda --precision bf16 --epochs 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from selfsup import load_config_text, run_experiment
from selfsup.engine.loop import MiniBatch
from selfsup_audio.datasets import fsdd
from selfsup_audio.encoders.ssast import SSASTEncoder
from selfsup_audio.objectives.ssast import SSAST

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FSDD = os.environ.get("SELFSUP_SHARED_DATA", str(ROOT / ".." / "shared" / "data"))
RECORDINGS = str(Path(FSDD) / "fsdd" / "recordings")
ENCODER = {
    "sample_rate": 8000,
    "n_mels": 40,
    "patch": "frame",
    "embed_dim": 128,
    "depth": 4,
    "num_heads": 4,
}
OBJECTIVE = {"mask_ratio": 0.75, "cluster": True, "nce_weight": 1.0, "mse_weight": 10.0}
BATCH, LR, WD = 64, 1e-3, 0.01

_FIT_TIMES: list[tuple[float, float]] = []


def _timed_fit(fit):  # type: ignore[no-untyped-def]
    """Wrap ``MiniBatch.fit`` to record its (wall, CPU) seconds."""

    def wrapper(self, ctx):  # type: ignore[no-untyped-def]
        _sync(ctx.runtime.device)
        wall, cpu = time.perf_counter(), time.process_time()
        fit(self, ctx)
        _sync(ctx.runtime.device)
        _FIT_TIMES.append((time.perf_counter() - wall, time.process_time() - cpu))

    return wrapper


MiniBatch.fit = _timed_fit(MiniBatch.fit)  # type: ignore[method-assign]


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def hand_loop(
    data: Any, epochs: int, seed: int, device: str, bf16: bool
) -> tuple[float, float, int]:
    """The plain PyTorch loop; returns its training (wall, CPU) seconds and steps."""
    torch.manual_seed(seed)
    encoder = SSASTEncoder(**ENCODER).to(device)
    objective = SSAST(encoder.embed_dim, **OBJECTIVE)
    objective.attach(encoder)
    objective.to(device)
    params = [*encoder.parameters(), *objective.parameters()]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WD)
    loader = torch.utils.data.DataLoader(
        data.train,
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        collate_fn=data.collate,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.startswith("cuda"),
    )
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if bf16 else nullcontext()
    encoder.train()
    objective.train()
    steps = 0
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for wave, _y in loader:
            wave = wave.to(device, non_blocking=True)
            with autocast:
                out = objective(encoder, [wave])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            loss = out.loss.item()
            assert loss == loss, "NaN loss"
            steps += 1
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, steps


def engine_run(
    out: Path, epochs: int, seed: int, device: str, precision: str
) -> tuple[float, float, int]:
    """The selfsup path; returns the routine's (wall, CPU) seconds and its steps."""
    cfg = load_config_text(
        f"""
name: audio-speed
output_dir: {out}
seeds: [{seed}]
baseline: false
data: {{id: audio:fsdd, params: {{root: {RECORDINGS}, label: digit, split: by-index,
        max_seconds: 1.0}}}}
encoder: {{id: audio:ssast, params: {json.dumps(ENCODER)}}}
views: core:identity
objective: {{id: audio:ssast, params: {json.dumps(OBJECTIVE)}}}
train:
  epochs: {epochs}
  batch_size: {BATCH}
  device: {device}
  precision: {precision}
  optimizer: {{name: adamw, lr: {LR}, weight_decay: {WD}}}
  schedule: {{name: constant}}
"""
    )
    result = run_experiment(cfg, console=Console(file=io.StringIO()), progress=True)
    run = result.runs[0]
    assert run["status"] == "ok", run
    wall, cpu = _FIT_TIMES[-1]
    return wall, cpu, int(run["steps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite audio_speed.md from the JSON"
    )
    args = parser.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "audio_speed.json").read_text())["runs"])
        return
    torch.set_num_threads(args.threads)
    data = fsdd(RECORDINGS, label="digit", split="by-index", max_seconds=1.0)
    bf16 = args.precision == "bf16"
    hand: list[tuple[float, float, int]] = []
    engine: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine_run(Path(tmp) / "warmup", 1, 0, args.device, args.precision)  # imports, allocator
        hand_loop(data, 1, 0, args.device, bf16)
        for rep in range(args.repeats):
            order = ["hand", "engine"] if rep % 2 == 0 else ["engine", "hand"]
            for which in order:
                if which == "hand":
                    hand.append(hand_loop(data, args.epochs, rep, args.device, bf16))
                else:
                    engine.append(
                        engine_run(
                            Path(tmp) / f"r{rep}", args.epochs, rep, args.device, args.precision
                        )
                    )
            print(f"pair {rep}: hand {hand[-1][:2]} engine {engine[-1][:2]} (wall, cpu s)")
    steps = engine[0][2]
    assert all(h[2] == steps for h in hand), (steps, [h[2] for h in hand])
    clips = steps * BATCH
    med = {k: statistics.median(x[0] for x in v) for k, v in (("hand", hand), ("engine", engine))}
    cpu = {k: statistics.median(x[1] for x in v) for k, v in (("hand", hand), ("engine", engine))}
    record = {
        "command": f"benchmarks/audio_speed.py --epochs {args.epochs} --repeats {args.repeats} "
        f"--threads {args.threads} --device {args.device} --precision {args.precision}",
        "date": time.strftime("%Y-%m-%d"),
        "setup": {
            "data": "FSDD train (by-index), 1 s crops, 8 kHz",
            "encoder": ENCODER,
            "objective": OBJECTIVE,
            "batch_size": BATCH,
            "steps_per_run": steps,
        },
        "hand_wall_s": [h[0] for h in hand],
        "engine_wall_s": [e[0] for e in engine],
        "hand_cpu_s": [h[1] for h in hand],
        "engine_cpu_s": [e[1] for e in engine],
        "hand_clips_per_s": clips / med["hand"],
        "engine_clips_per_s": clips / med["engine"],
        "overhead_wall_pct": 100 * (med["engine"] / med["hand"] - 1),
        "overhead_cpu_pct": 100 * (cpu["engine"] / cpu["hand"] - 1),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "audio_speed.json"
    runs = json.loads(path.read_text())["runs"] if path.is_file() else {}
    runs[f"{args.device.split(':')[0]}-{args.precision}-{args.threads}t"] = record
    _write(path, json.dumps({"benchmark": "audio_speed", "runs": runs}, indent=2) + "\n")
    write_markdown(runs)
    print(json.dumps({k: record[k] for k in record if "pct" in k or "clips" in k}, indent=1))


def write_markdown(runs: dict[str, Any]) -> None:
    """``audio_speed.md`` from the recorded runs (wall and CPU-time figures)."""
    lines = [
        "| device / precision | threads | steps | hand clips/s (wall) | selfsup clips/s (wall) "
        "| hand clips per CPU-s | selfsup clips per CPU-s | overhead (CPU time) "
        "| overhead (wall) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in sorted(runs.items()):
        _dev, prec, threads = key.split("-")
        clips = r["setup"]["steps_per_run"] * r["setup"]["batch_size"]
        cpu_hand = clips / statistics.median(r["hand_cpu_s"])
        cpu_engine = clips / statistics.median(r["engine_cpu_s"])
        lines.append(
            f"| {r['machine']['device']} / {prec} | {threads[:-1]} | {r['setup']['steps_per_run']} "
            f"| {r['hand_clips_per_s']:.1f} | {r['engine_clips_per_s']:.1f} "
            f"| {cpu_hand:.1f} | {cpu_engine:.1f} | {r['overhead_cpu_pct']:+.1f}% "
            f"| {r['overhead_wall_pct']:+.1f}% | {r['machine']['load_average_1m']:.1f} |"
        )
    note = (
        "\n\nSSAST pretraining (examples/audio/ssast_fsdd.yaml's model) on FSDD, batch 64; "
        "medians of alternating pairs; overhead = selfsup / hand - 1. On a CPU the CPU-time "
        "columns are the robust ones (this process's CPU seconds do not depend on other "
        "processes); wall time is comparable only when the load average (last column) is "
        "below the core count: each run's CPU share (cpu_s / wall_s) is in audio_speed.json. "
        "On a GPU, wall time counts.\n"
    )
    _write(RESULTS / "audio_speed.md", "\n".join(lines) + note)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
