"""Speed and accuracy of the core evaluators on Fashion-MNIST (60000 + 10000 images).

Two frozen "encoders" over the real images: raw pixels (784-d) and a fixed random
ReLU projection to 512-d (the size of a typical SSL embedding). Every evaluator runs
with its default parameters on the runtime's device. Results go to
``benchmarks/results/core_evaluators.{json,md}``.

Run (from the repository root; needs Debian's ``dataset-fashion-mnist``):

    nice -n 10 .venv/bin/python benchmarks/core_evaluators.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from selfsup.builtin.evaluators.clustering import KMeansClustering
from selfsup.builtin.evaluators.knn import KNN
from selfsup.builtin.evaluators.linear_probe import LinearProbe
from selfsup.builtin.evaluators.rankme import RankMe
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic
from selfsup.engine.runtime import Runtime
from selfsup.interfaces import DataSplits, Encoder, EncoderOutput, EvalContext
from torch import nn
from torch.utils.data import TensorDataset

FMNIST = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).resolve().parent / "results"


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist() -> DataSplits:
    x_tr = torch.from_numpy(read_idx(FMNIST / "train-images-idx3-ubyte.gz").copy())
    y_tr = torch.from_numpy(read_idx(FMNIST / "train-labels-idx1-ubyte.gz").astype(np.int64))
    x_te = torch.from_numpy(read_idx(FMNIST / "t10k-images-idx3-ubyte.gz").copy())
    y_te = torch.from_numpy(read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    return DataSplits(
        train=TensorDataset(x_tr.float() / 255.0, y_tr),
        test=TensorDataset(x_te.float() / 255.0, y_te),
        num_classes=10,
        modality="image",
    )


class Pixels(Encoder):
    modality = "image"
    embed_dim = 784

    def forward(self, x):
        return EncoderOutput(pooled=x.flatten(1))


class RandomReLU(Encoder):
    modality = "image"

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed_dim = dim
        self.proj = nn.Linear(784, dim)

    def forward(self, x):
        return EncoderOutput(pooled=torch.relu(self.proj(x.flatten(1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    runtime = Runtime(device=torch.device(args.device))
    data = load_fashion_mnist()
    evaluators = {
        "linear-probe": LinearProbe(),
        "knn": KNN(),
        "kmeans": KMeansClustering(),
        "rankme": RankMe(),
    }
    rows = []
    for enc_name, encoder in {"pixels-784": Pixels(), "random-relu-512": RandomReLU()}.items():
        encoder.to(runtime.device)
        for ev_name, evaluator in evaluators.items():
            start = time.perf_counter()
            metrics = evaluator.evaluate(encoder, data, EvalContext(runtime=runtime, seed=0))
            seconds = time.perf_counter() - start
            rows.append(
                {"encoder": enc_name, "evaluator": ev_name, "seconds": round(seconds, 2), **metrics}
            )
            print(rows[-1], flush=True)
    record = {
        "dataset": "Fashion-MNIST (train 60000: 10% carved for validation; test 10000)",
        "device": str(runtime.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "note": "wall-clock on a shared machine; other jobs may have been running",
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "core_evaluators.json"
    write_json_atomic(record, out)
    lines = [
        "# Core evaluators on Fashion-MNIST",
        "",
        f"Device `{record['device']}`, {record['threads']} torch threads, torch {record['torch']}.",
        f"{record['dataset']}. Produced by `benchmarks/core_evaluators.py`; {record['note']}.",
        "",
        "| encoder | evaluator | seconds | metrics |",
        "|---|---|---|---|",
    ]
    for row in rows:
        shown = ", ".join(
            f"{k} {v:.4g}" for k, v in row.items() if k not in ("encoder", "evaluator", "seconds")
        )
        lines.append(f"| {row['encoder']} | {row['evaluator']} | {row['seconds']} | {shown} |")
    md = RESULTS / "core_evaluators.md"
    write_bytes_atomic(("\n".join(lines) + "\n").encode("utf-8"), md)


if __name__ == "__main__":
    main()
