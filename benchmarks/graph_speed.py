"""Graph speed benchmark: seconds per epoch of the graph routines on CPU.

1. GraphMAE on Cora, full batch (``graph:full-batch``), the settings of
   ``examples/graph/graphmae_cora.yaml`` (GAT 2 x 512, 4 heads, GAT decoder), with 1 and
   2 intra-op threads.
2. The neighbour-sampled routine (``graph:neighbor``, fan-out [10, 5], 2048 seed nodes
   per step) with GraphMAE on a synthetic graph from PyG's ``FakeDataset`` generator
   (random edges, random features) with more than a million edges: one epoch over every
   node, split into sampling and training time.

Both run the real routines through a :class:`RunContext` and read the epoch times they
log. Results: ``benchmarks/results/graph_speed.json`` and ``graph_speed.md``. GPU figures
are not measured here (no GPU on this machine).

    nice -n 10 python benchmarks/graph_speed.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from selfsup.config import ArmConfig, ComponentRef, TrainConfig
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.context import RunContext
from selfsup.engine.results import write_json_atomic
from selfsup.engine.runtime import Runtime
from selfsup_graph.encoders import GAT
from selfsup_graph.objectives.graphmae import GraphMAE
from selfsup_graph.routines import FullBatch, NeighborBatch
from selfsup_graph.splits import GraphSplits

ROOT = Path(__file__).resolve().parents[1]
CORA = ROOT / ".." / "shared" / "data" / "planetoid"


def _ctx(run_dir: Path, data: Any, enc: Any, obj: Any, routine: str, **train: Any) -> RunContext:
    arm = ArmConfig(
        name="speed",
        data=ComponentRef(id="graph:planetoid"),
        encoder=ComponentRef(id="graph:gat"),
        views=ComponentRef(id="core:identity"),
        objective=ComponentRef(id="graph:graphmae"),
        routine=ComponentRef(id=routine),
        train=TrainConfig(device="cpu", progress=False, checkpoint_every=1000, **train),
    )
    return RunContext(
        arm=arm,
        seed=0,
        run_dir=run_dir,
        runtime=Runtime(device=torch.device("cpu")),
        encoder=enc,
        objective=obj,
        views=lambda g: [g],
        data=data,
    )


def _epoch_times(run_dir: Path) -> list[float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch_time_s"] for r in rows if "epoch_time_s" in r]


def graphmae_cora(threads: int, epochs: int = 30) -> dict[str, Any]:
    from selfsup_graph.datasets import planetoid

    torch.set_num_threads(threads)
    data = planetoid("Cora", root=str(CORA))
    torch.manual_seed(0)
    enc = GAT(1433, 512, 2, heads=4, activation="prelu", dropout=0.2, attn_dropout=0.1)
    obj = GraphMAE(512, in_dim=1433)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = _ctx(
            Path(tmp),
            data,
            enc,
            obj,
            "graph:full-batch",
            epochs=epochs,
            optimizer={"name": "adam", "lr": 1e-3, "weight_decay": 2e-4},
        )
        FullBatch().fit(ctx)
        times = _epoch_times(Path(tmp))[5:]  # skip warm-up epochs
    return {
        "threads": threads,
        "epochs_timed": len(times),
        "s_per_epoch_median": statistics.median(times),
        "s_per_epoch_min": min(times),
    }


def neighbor_synthetic(threads: int = 2, nodes: int = 50_000) -> dict[str, Any]:
    from selfsup_graph.sampling import NeighborSampler, SeedLoader
    from torch_geometric.datasets import FakeDataset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    graph = FakeDataset(
        num_graphs=1,
        avg_num_nodes=nodes,
        avg_degree=12,
        num_channels=64,
        num_classes=10,
        is_undirected=True,
    )[0]
    gen_s = time.perf_counter() - start
    n, e = int(graph.num_nodes), int(graph.edge_index.size(1))
    nodes = {"train": torch.arange(0, n // 10), "test": torch.arange(n // 10, n)}
    data = GraphSplits(graph, nodes, num_classes=10)
    batch, fanout = 2048, [10, 5]
    # sampling alone, one pass over every node
    loader = SeedLoader(NeighborSampler(graph, fanout), torch.arange(n), batch)
    start = time.perf_counter()
    sub_nodes = [b.num_nodes for b in loader]
    sample_s = time.perf_counter() - start
    enc = GAT(64, 256, 2, heads=4, activation="prelu", dropout=0.2, attn_dropout=0.1)
    obj = GraphMAE(256, in_dim=64)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = _ctx(
            Path(tmp),
            data,
            enc,
            obj,
            "graph:neighbor",
            epochs=1,
            batch_size=batch,
            optimizer={"name": "adam", "lr": 1e-3},
        )
        NeighborBatch(num_neighbors=fanout).fit(ctx)
        epoch_s = _epoch_times(Path(tmp))[0]
    return {
        "threads": threads,
        "num_nodes": n,
        "num_edges": e,
        "generate_s": gen_s,
        "seed_batch": batch,
        "num_neighbors": fanout,
        "steps_per_epoch": len(sub_nodes),
        "mean_subgraph_nodes": statistics.fmean(sub_nodes),
        "sampling_s_per_epoch": sample_s,
        "s_per_epoch": epoch_s,
        "nodes_per_s": n / epoch_s,
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Graph routine speed (seconds per epoch).")
    parser.add_argument("--epochs", type=int, default=30, help="timed Cora epochs (+5 warm-up)")
    parser.add_argument("--nodes", type=int, default=50_000, help="synthetic graph nodes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    out: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_avg_1min_at_start": load,
        },
        "graphmae_cora_full_batch": [
            graphmae_cora(1, args.epochs + 5),
            graphmae_cora(2, args.epochs + 5),
        ],
        "graphmae_neighbor_synthetic": neighbor_synthetic(1, args.nodes),
        "gpu": "not measured: no GPU here",
    }
    out["machine"]["load_avg_1min_at_end"] = os.getloadavg()[0]
    results = Path(args.out)
    results.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, results / "graph_speed.json")
    lines = ["| benchmark | threads | s/epoch | notes |", "|---|---|---|---|"]
    for r in out["graphmae_cora_full_batch"]:
        lines.append(
            f"| GraphMAE Cora full batch (GAT 2x512) | {r['threads']} | "
            f"{r['s_per_epoch_median']:.3f} (min {r['s_per_epoch_min']:.3f}) | "
            f"median of {r['epochs_timed']} epochs |"
        )
    s = out["graphmae_neighbor_synthetic"]
    lines.append(
        f"| GraphMAE neighbour-sampled, {s['num_nodes']} nodes / {s['num_edges']} edges "
        f"| {s['threads']} | {s['s_per_epoch']:.1f} | {s['steps_per_epoch']} steps of "
        f"{s['seed_batch']} seeds, fan-out {s['num_neighbors']}, sampling alone "
        f"{s['sampling_s_per_epoch']:.1f} s |"
    )
    lines.append("| GPU | - | not measured: no GPU here | |")
    md = (
        "\n".join(lines) + f"\n\nLoad average (1 min) at start/end: {load:.1f} / "
        f"{out['machine']['load_avg_1min_at_end']:.1f} on {os.cpu_count()} cores.\n"
    )
    write_bytes_atomic(md.encode("utf-8"), results / "graph_speed.md")
    print(md)


if __name__ == "__main__":
    main()
