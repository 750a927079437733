"""Medical plugin speed: pretraining crops/s through selfsup vs a hand-written MONAI loop,
and sliding-window inference through ``medical:segmentation`` vs calling MONAI directly.

1. **Pretraining.** The same UNet encoder (MONAI residual units), the same
   ``medical:masked-volume`` objective, the same ``medical:crops`` views, batch and
   optimiser, on the same Colin27 training crops: once through ``selfsup run`` (the
   engine's loop: data loader, views, DDP-ready step, logging, checkpoints) and once
   in a plain PyTorch loop written as in MONAI's tutorials. Crops per second of the
   training phase (the runner's ``train_time_s``; the hand loop's own timer);
   overhead = 1 - selfsup / hand.
2. **Sliding window.** One fine-tuning-ready segmentation net (UNet encoder + the
   plugin's UNETR-style decoder) on the right-hemisphere test volume: the evaluator's
   ``predict`` (``monai.inferers.sliding_window_inference``, overlap 0.5, Gaussian)
   vs the same MONAI call written by hand. Ratio = selfsup / MONAI (1 = no overhead).
3. **Sparse masking.** The cost of ``medical:masked-volume``'s ``sparse: true`` (SparK
   emulation: every layer re-masked, norms over visible voxels): seconds per training
   step with and without it, same encoder, batches and 8^3 cubes. Ratio = sparse /
   dense.

Repeats are interleaved (the order alternating) and the median is reported: a run is
~30 s, and another process on a shared CPU moves single runs by several percent.

    OMP_NUM_THREADS=1 python benchmarks/medical_speed.py [--repeats 3] [--epochs 2] \
        [--parts pretraining sliding_window sparse]

``--parts`` re-measures only those parts and keeps the others' last figures.

Writes ``benchmarks/results/medical_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ["pretraining", "sliding_window", "sparse"]
CROPS, BATCH, LR = 128, 4, 1e-3  # 32 steps an epoch: per-epoch costs weigh as in a run
CONFIG = """
name: medical-speed
seeds: [0]
baseline: false
output_dir: {out}
data:
  id: medical:colin27-aal
  params: {{spacing: 2.0, crop_size: 32, train_crops: {crops}}}
encoder: {{id: medical:unet-encoder, params: {{channels: [16, 32, 64, 128]}}}}
views: {{id: medical:crops, params: {{size: 32, num_views: 1, min_scale: 0.8}}}}
objective: {{id: medical:masked-volume, params: {{mask_ratio: 0.6, mask_patch: 4}}}}
evaluators: []
train:
  epochs: {epochs}
  batch_size: {batch}
  optimizer: {{name: adamw, lr: {lr}, weight_decay: 0.0}}
  schedule: {{name: constant}}
  progress: false
"""


def selfsup_run(epochs: int) -> float:
    """Crops/s of the training phase of ``selfsup run`` (one seed)."""
    from selfsup import load_config_text, run_experiment

    with tempfile.TemporaryDirectory() as out:
        text = CONFIG.format(out=out, crops=CROPS, epochs=epochs, batch=BATCH, lr=LR)
        result = run_experiment(load_config_text(text), progress=False)
        run = result.runs[0]
        assert run["status"] == "ok", run
        steps = epochs * (CROPS // BATCH)
        return steps * BATCH / float(run["train_time_s"])


def hand_loop(data, epochs: int) -> float:  # type: ignore[no-untyped-def]
    """The same work in a plain PyTorch/MONAI loop; crops/s."""
    from selfsup_medical.encoders.unet import UNetEncoder
    from selfsup_medical.objectives.masked_volume import MaskedVolume
    from selfsup_medical.views import VolumeCrops

    torch.manual_seed(0)
    encoder = UNetEncoder(channels=(16, 32, 64, 128))
    objective = MaskedVolume(embed_dim=encoder.embed_dim, mask_ratio=0.6, mask_patch=4)
    objective.attach(encoder)
    views = VolumeCrops(size=32, num_views=1, min_scale=0.8)
    opt = torch.optim.AdamW([*encoder.parameters(), *objective.parameters()], lr=LR, weight_decay=0)
    loader = torch.utils.data.DataLoader(data.train, batch_size=BATCH, shuffle=True, drop_last=True)
    start = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        for x, _y in loader:
            loss = objective(encoder, views(x)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += x.shape[0]
    return seen / (time.perf_counter() - start)


def _interleaved(
    first: Callable[[], float], second: Callable[[], float], repeats: int
) -> tuple[list[float], list[float]]:
    """``repeats`` figures of each, taken in pairs whose order alternates, so that both
    see the same load of a shared machine."""
    a, b = [], []
    for i in range(repeats):
        if i % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return a, b


def pretraining(data, repeats: int, epochs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median crops/s of ``selfsup run`` vs the hand loop, interleaved."""
    ours, hand = _interleaved(lambda: selfsup_run(epochs), lambda: hand_loop(data, epochs), repeats)
    train = {
        "selfsup_crops_per_s": statistics.median(ours),
        "hand_crops_per_s": statistics.median(hand),
        "all_selfsup": ours,
        "all_hand": hand,
    }
    train["overhead"] = 1 - train["selfsup_crops_per_s"] / train["hand_crops_per_s"]
    return train


def sliding_window(data, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median seconds of the evaluator's sliding window vs MONAI called directly."""
    from monai.inferers import sliding_window_inference
    from selfsup.interfaces import EvalContext
    from selfsup.runtime import Runtime
    from selfsup_medical.encoders.unet import UNetEncoder
    from selfsup_medical.evaluators.decoder import SegmentationNet
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune, test_volumes

    torch.manual_seed(0)
    net = SegmentationNet(UNetEncoder(channels=(16, 32, 64, 128)), data.num_classes, 8).eval()
    image = test_volumes(data)[0][0]
    ev = SegmentationFinetune(overlap=0.5, sw_batch_size=4)
    ev.roi = (32, 32, 32)
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
    ours, direct = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        a = ev.predict(net, image, ctx)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            b = sliding_window_inference(
                image[None], (32, 32, 32), 4, net, overlap=0.5, mode="gaussian"
            )
        direct.append(time.perf_counter() - start)
        assert torch.allclose(a, torch.as_tensor(b).float(), atol=1e-4), "outputs differ"
    return {
        "volume_shape": list(image.shape[1:]),
        "selfsup_s": statistics.median(ours),
        "monai_s": statistics.median(direct),
        "ratio": statistics.median(ours) / statistics.median(direct),
    }


def sparse_cost(data, repeats: int, steps: int = 16) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median seconds per masked-volume step with ``sparse`` on vs off (same batches)."""
    from selfsup_medical.encoders.unet import UNetEncoder
    from selfsup_medical.objectives.masked_volume import MaskedVolume

    def step_time(sparse: bool, batches: list) -> float:  # type: ignore[type-arg]
        torch.manual_seed(0)
        encoder = UNetEncoder(channels=(16, 32, 64, 128))
        objective = MaskedVolume(encoder.embed_dim, mask_patch=8, sparse=sparse)
        objective.attach(encoder)
        opt = torch.optim.AdamW([*encoder.parameters(), *objective.parameters()], lr=LR)
        start = time.perf_counter()
        for x in batches:
            loss = objective(encoder, [x]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / len(batches)

    crops = torch.stack([data.train[i][0] for i in range(BATCH * steps)])
    batches = list(crops.split(BATCH))
    dense, sparse = _interleaved(
        lambda: step_time(False, batches), lambda: step_time(True, batches), repeats
    )
    return {
        "dense_s_per_step": statistics.median(dense),
        "sparse_s_per_step": statistics.median(sparse),
        "ratio": statistics.median(sparse) / statistics.median(dense),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--parts",
        nargs="+",
        default=PARTS,
        choices=PARTS,
        help="what to measure; the other parts keep their figures from the last results file",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    from selfsup_medical.datasets import colin27_aal

    data = colin27_aal(spacing=2.0, crop_size=32, train_crops=CROPS)
    out = RESULTS / "medical_speed.json"
    record = json.loads(out.read_text()) if out.is_file() else {}
    if "pretraining" in args.parts:
        record["pretraining"] = pretraining(data, args.repeats, args.epochs)
    if "sliding_window" in args.parts:
        record["sliding_window"] = sliding_window(data, args.repeats)
    if "sparse" in args.parts:
        record["sparse"] = sparse_cost(data, args.repeats)
    missing = [p for p in PARTS if p not in record]
    if missing:
        raise SystemExit(f"no figures yet for {missing}: run with --parts {' '.join(missing)}")
    record["setup"] = {
        "model": "UNet encoder (16-32-64-128) + masked-volume light decoder, batch 4, 32^3",
        "epochs": args.epochs,
        "crops_per_epoch": CROPS,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "measured_now": args.parts,
    }
    train, sw, sp = record["pretraining"], record["sliding_window"], record["sparse"]
    RESULTS.mkdir(exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out)
    md = [
        "# Medical plugin speed (CPU, one thread, median of interleaved repeats)",
        "",
        "| what | selfsup | baseline | ratio |",
        "|---|---|---|---|",
        f"| pretraining crops/s (masked-volume, UNet, 32^3, batch 4) | "
        f"{train['selfsup_crops_per_s']:.2f} | {train['hand_crops_per_s']:.2f} (hand loop) | "
        f"{train['selfsup_crops_per_s'] / train['hand_crops_per_s']:.3f} "
        f"(overhead {100 * train['overhead']:.1f}%) |",
        f"| sliding window s ({'x'.join(map(str, sw['volume_shape']))}, roi 32, overlap 0.5) | "
        f"{sw['selfsup_s']:.2f} | {sw['monai_s']:.2f} (MONAI direct) | {sw['ratio']:.3f} |",
        f"| masked-volume s/step, sparse: true (SparK emulation, 8^3 cubes, batch 4) | "
        f"{sp['sparse_s_per_step']:.3f} | {sp['dense_s_per_step']:.3f} (sparse: false) | "
        f"{sp['ratio']:.3f} |",
        "",
        "The machine is shared: absolute figures vary with its load; ratios are what matter.",
    ]
    tmp = RESULTS / "medical_speed.md.tmp"
    tmp.write_text("\n".join(md) + "\n")
    os.replace(tmp, RESULTS / "medical_speed.md")
    print("\n".join(md))


if __name__ == "__main__":
    main()
