"""GPU training throughput of the vision stack: SimCLR steps on ResNet-50 and ViT-S/16.

Each step is what ``selfsup run`` does per batch on a GPU: uint8 images already on the
device -> ``vision:simclr`` views made on the GPU (per-sample crops, flips, colour
jitter, grayscale, blur) -> ``vision:timm`` encoder (bf16 autocast, channels_last for
the CNN) -> ``core:simclr`` projector and NT-Xent -> backward -> AdamW step. Inputs are
random uint8 images (throughput only; no claim about accuracy). Reported: images/s
(one image = two views) and the share of the step spent making views.

Run on a machine with a CUDA GPU, from the repository root:

    .venv/bin/python benchmarks/vision_gpu_throughput.py [--batch 256] [--steps 30] [--compile]

Writes ``benchmarks/results/vision_gpu_throughput.json`` and ``.md``. Without a GPU it
prints "not measured: no GPU" and writes nothing.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from selfsup.builtin.objectives.infonce import SimCLR
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic
from selfsup_vision.timm_encoders import TimmEncoder
from selfsup_vision.views import SimCLRViews

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {
    "resnet50": {"model": "resnet50", "channels_last": True},
    "vit_small_patch16_224": {"model": "vit_small_patch16_224", "channels_last": False},
}


def measure(name: str, spec: dict, batch: int, steps: int, size: int, compile_: bool) -> dict:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    encoder = TimmEncoder(spec["model"], in_chans=3).to(dev)
    if spec["channels_last"]:
        encoder = encoder.to(memory_format=torch.channels_last)
    objective = SimCLR(encoder.embed_dim, hidden_dim=2048, out_dim=128, temperature=0.2).to(dev)
    views = SimCLRViews(size=size, blur_p=0.5, blur_sigma=(0.1, 2.0))
    opt = torch.optim.AdamW([*encoder.parameters(), *objective.parameters()], lr=1e-4)
    model_fn = torch.compile(objective) if compile_ else objective
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)

    def step() -> float:
        t0 = torch.cuda.Event(enable_timing=True)
        t1 = torch.cuda.Event(enable_timing=True)
        t0.record()
        v = views(images)
        t1.record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model_fn(encoder, v)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        torch.cuda.synchronize()
        return t0.elapsed_time(t1) / 1e3

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    view_s = sum(step() for _ in range(steps))
    elapsed = time.perf_counter() - start
    return {
        "model": name,
        "batch": batch,
        "image_size": size,
        "precision": "bf16",
        "channels_last": spec["channels_last"],
        "compile": compile_,
        "images_per_s": batch * steps / elapsed,
        "step_s": elapsed / steps,
        "views_share": view_s / elapsed,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("not measured: no GPU")
        return
    torch.backends.cudnn.benchmark = True
    rows = []
    for name, spec in MODELS.items():
        torch.cuda.reset_peak_memory_stats()
        rows.append(measure(name, spec, args.batch, args.steps, args.size, args.compile))
        print(rows[-1])
    result = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, RESULTS / "vision_gpu_throughput.json")
    lines = [
        f"GPU: {result['gpu']}, bf16 autocast, batch {args.batch}, {args.size}x{args.size}.",
        "",
        "| model | images/s | step | views share | peak memory |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['images_per_s']:.0f} | {r['step_s'] * 1e3:.0f} ms "
            f"| {r['views_share']:.1%} | {r['peak_memory_gib']:.1f} GiB |"
        )
    write_bytes_atomic(
        ("\n".join(lines) + "\n").encode("utf-8"), RESULTS / "vision_gpu_throughput.md"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
