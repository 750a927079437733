"""selfsup vs lightly on the same SimCLR training step, and batched vs per-image augmentation.

(1) Training step. The same encoder (``vision:small-cnn``, 0.39M parameters, starting
    from the same weights), the same two augmented views of a batch of Fashion-MNIST
    training images (made once, reused by both), AdamW, and:
      selfsup: ``core:simclr`` (``MLPHead`` 256 -> 512 -> 128 projector, NT-Xent);
      lightly: ``SimCLRProjectionHead(256, 512, 128)`` + ``lightly.loss.NTXentLoss``.
    A step is forward of both views, projector, loss, backward and optimiser step. The
    two alternate for ``--steps`` steps after a warm-up; wall and process CPU time
    (``time.process_time``, robust to other processes on a shared machine) per step are
    reported as medians and as the ratio selfsup / lightly (below 1: selfsup faster).

(2) Loss agreement. selfsup's ``info_nce`` and lightly's ``NTXentLoss`` on the same
    projections (selfsup's projector output), at temperatures 0.1, 0.2 and 0.5.

(3) Augmentation throughput (context). ``vision:simclr`` views of a uint8 batch (per-
    sample parameters, batched tensor ops) against lightly's ``SimCLRTransform``
    (torchvision, one PIL image at a time, what a DataLoader worker runs), both making
    two 28x28 views per image with crop, flip, colour jitter and grayscale, no blur.

Run from the repository root (needs Debian's ``dataset-fashion-mnist``):

    nice -n 10 .venv/bin/python benchmarks/vision_vs_lightly.py [--steps 30] [--threads 2]

Writes ``benchmarks/results/vision_vs_lightly.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from PIL import Image
from selfsup.builtin.objectives.infonce import SimCLR, info_nce_terms
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic
from selfsup_vision.datasets import fashion_mnist
from selfsup_vision.encoders import SmallCNN
from selfsup_vision.views import SimCLRViews

RESULTS = Path(__file__).resolve().parent / "results"
TEMP = 0.2


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def train_step_comparison(views: list[torch.Tensor], steps: int, channels_last: bool) -> dict:
    torch.manual_seed(0)
    base = SmallCNN(in_chans=1)
    if channels_last:
        base = base.to(memory_format=torch.channels_last)
    enc_a, enc_b = copy.deepcopy(base), copy.deepcopy(base)
    ours = SimCLR(256, hidden_dim=512, out_dim=128, temperature=TEMP)
    head = SimCLRProjectionHead(256, 512, 128)
    loss_fn = NTXentLoss(temperature=TEMP)
    opt_a = torch.optim.AdamW([*enc_a.parameters(), *ours.parameters()], lr=1e-3)
    opt_b = torch.optim.AdamW([*enc_b.parameters(), *head.parameters()], lr=1e-3)

    def step_ours() -> None:
        out = ours(enc_a, views)
        opt_a.zero_grad(set_to_none=True)
        out.loss.backward()
        opt_a.step()

    def step_lightly() -> None:
        z0, z1 = head(enc_b(views[0]).pooled), head(enc_b(views[1]).pooled)
        loss = loss_fn(z0, z1)
        opt_b.zero_grad(set_to_none=True)
        loss.backward()
        opt_b.step()

    for _ in range(3):
        step_ours()
        step_lightly()
    a, b = [], []
    for _ in range(steps):
        a.append(_timed(step_ours))
        b.append(_timed(step_lightly))
    wall_a, wall_b = statistics.median(t[0] for t in a), statistics.median(t[0] for t in b)
    cpu_a, cpu_b = statistics.median(t[1] for t in a), statistics.median(t[1] for t in b)
    n = views[0].shape[0]
    return {
        "channels_last": channels_last,
        "selfsup_step_wall_s": wall_a,
        "lightly_step_wall_s": wall_b,
        "selfsup_step_cpu_s": cpu_a,
        "lightly_step_cpu_s": cpu_b,
        "ratio_wall": wall_a / wall_b,
        "ratio_cpu": cpu_a / cpu_b,
        "selfsup_images_per_s": n / wall_a,
        "lightly_images_per_s": n / wall_b,
    }


def loss_agreement(views: list[torch.Tensor]) -> list[dict]:
    torch.manual_seed(1)
    enc, ours = SmallCNN(in_chans=1), SimCLR(256, hidden_dim=512, out_dim=128)
    with torch.no_grad():
        z0, z1 = (ours.projector(enc(v).pooled) for v in views)
    rows = []
    for t in (0.1, 0.2, 0.5):
        a, _ = info_nce_terms(z0, z1, temperature=t)
        b = NTXentLoss(temperature=t)(z0, z1)
        rows.append({"temperature": t, "selfsup": float(a), "lightly": float(b),
                     "abs_diff": abs(float(a) - float(b))})  # fmt: skip
    return rows


def augmentation_throughput(images: torch.Tensor, repeats: int) -> dict:
    ours = SimCLRViews(scale=(0.08, 1.0), blur_p=0.0)
    theirs = SimCLRTransform(
        input_size=28, cj_strength=0.5, min_scale=0.08, gaussian_blur=0.0, normalize=None
    )
    pil = [Image.fromarray(img[0].numpy(), mode="L") for img in images]
    ours(images)
    t_ours = min(_timed(lambda: ours(images))[0] for _ in range(repeats))
    t_theirs = min(_timed(lambda: [theirs(p) for p in pil])[0] for _ in range(max(1, repeats // 2)))
    n = images.shape[0]
    return {
        "batch": n,
        "selfsup_batched_images_per_s": n / t_ours,
        "lightly_per_image_images_per_s": n / t_theirs,
        "speedup": t_theirs / t_ours,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = fashion_mnist(val_size=0, train_size=4096, test_size=100)
    images = data.train.images[: args.batch]
    torch.manual_seed(0)
    views = SimCLRViews(scale=(0.2, 1.0))(images)
    result = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "batch": args.batch,
        "steps": args.steps,
        "train_step": [
            train_step_comparison(views, args.steps, channels_last=cl) for cl in (False, True)
        ],
        "loss_agreement": loss_agreement(views),
        "augmentation": augmentation_throughput(images, repeats=5),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, RESULTS / "vision_vs_lightly.json")
    lines = [
        "| layout | selfsup step (wall / CPU) | lightly step (wall / CPU) "
        "| ratio wall | ratio CPU |",
        "|---|---|---|---|---|",
    ]
    for r in result["train_step"]:
        lines.append(
            f"| {'channels_last' if r['channels_last'] else 'NCHW'} "
            f"| {r['selfsup_step_wall_s'] * 1e3:.0f} / {r['selfsup_step_cpu_s'] * 1e3:.0f} ms "
            f"| {r['lightly_step_wall_s'] * 1e3:.0f} / {r['lightly_step_cpu_s'] * 1e3:.0f} ms "
            f"| {r['ratio_wall']:.3f} | {r['ratio_cpu']:.3f} |"
        )
    worst = max(r["abs_diff"] for r in result["loss_agreement"])
    aug = result["augmentation"]
    lines += [
        "",
        f"Loss agreement (T = 0.1, 0.2, 0.5): max |selfsup - lightly| = {worst:.2e}.",
        f"Augmentation, 2 views of 28x28: selfsup batched {aug['selfsup_batched_images_per_s']:.0f}"
        f" img/s vs lightly per image {aug['lightly_per_image_images_per_s']:.0f} img/s "
        f"({aug['speedup']:.1f}x).",
    ]
    md = "\n".join(lines) + "\n"
    write_bytes_atomic(md.encode("utf-8"), RESULTS / "vision_vs_lightly.md")
    print(md)


if __name__ == "__main__":
    main()
