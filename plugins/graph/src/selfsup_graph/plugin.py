"""The graph plugin's hooks (``graph:`` ids). Hook implementations only.

Factories are lazy ``"module:attr"`` references, so ``selfsup plugins`` and
``selfsup list`` import neither torch_geometric nor this package's modules.
"""

from __future__ import annotations

from collections.abc import Callable

from selfsup.hookspecs import hookimpl
from selfsup.specs import (
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    ObjectiveSpec,
    RoutineSpec,
    ViewSpec,
)

_P = "selfsup_graph"


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the GNN encoders."""
    for name, attr, desc in [
        ("gcn", "GCN", "Graph convolutional network (PyG GCNConv stack)."),
        ("gat", "GAT", "Graph attention network (PyG GATConv; DGL/GraphMAE reference init)."),
        ("gin", "GIN", "Graph isomorphism network (PyG GINConv stack)."),
        ("features", "NodeFeatures", "Raw node features as embeddings (no-learning baseline)."),
    ]:
        register(
            EncoderSpec(
                name=name,
                modality="graph",
                build=f"{_P}.encoders:{attr}",
                description=desc,
                tags=("gnn",),
            )
        )


@hookimpl
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register the graph self-supervised objectives."""
    for name, ref, desc, tags in [
        (
            "graphmae",
            "graphmae:GraphMAE",
            "GraphMAE: masked node-feature reconstruction, re-masking, GAT decoder, SCE loss.",
            ("masked",),
        ),
        (
            "grace",
            "grace:GRACE",
            "GRACE: node-level InfoNCE across two edge-dropped, feature-masked views.",
            ("contrastive",),
        ),
        (
            "barlow-twins",
            "redundancy:GraphBarlowTwins",
            "Graph Barlow Twins (G-BT): Barlow Twins loss on two views' node embeddings.",
            ("redundancy-reduction",),
        ),
        (
            "vicreg",
            "redundancy:GraphVICReg",
            "VICReg's invariance, variance and covariance terms on node embeddings.",
            ("redundancy-reduction",),
        ),
        (
            "link-recon",
            "link:LinkReconstruction",
            "Masked link reconstruction: hidden edges against random pairs (BCE).",
            ("generative",),
        ),
        (
            "multitask",
            "multitask:MultiTask",
            "Several graph pretext tasks combined by weighted sum or MGDA (ParetoGNN).",
            ("multi-task",),
        ),
    ]:
        register(
            ObjectiveSpec(
                name=name,
                modality="graph",
                build=f"{_P}.objectives.{ref}",
                description=desc,
                tags=tags,
            )
        )


@hookimpl
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register the graph view makers."""
    register(
        ViewSpec(
            name="drop-edge-mask-feature",
            modality="graph",
            build=f"{_P}.views:DropEdgeMaskFeature",
            description="Views by random edge dropping and feature-column masking (GRACE).",
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the graph datasets (local files only)."""
    for name, attr, desc in [
        (
            "planetoid",
            "planetoid",
            "Planetoid citation graphs (Cora, CiteSeer, PubMed) from local files, public split.",
        ),
        ("karate", "karate", "Zachary's karate club (built into PyG), random node split."),
        (
            "pyg",
            "pyg_dataset",
            "A node-level torch_geometric.datasets class from an allow-list, local files only.",
        ),
    ]:
        register(
            DatasetSpec(
                name=name, modality="graph", build=f"{_P}.datasets:{attr}", description=desc
            )
        )


@hookimpl
def register_routines(register: Callable[[RoutineSpec], None]) -> None:
    """Register the graph training routines."""
    register(
        RoutineSpec(
            name="full-batch",
            modality="graph",
            build=f"{_P}.routines:FullBatch",
            description="One optimiser step per epoch on the whole graph.",
        )
    )
    register(
        RoutineSpec(
            name="neighbor",
            modality="graph",
            build=f"{_P}.routines:NeighborBatch",
            description="Mini-batches of seed nodes with sampled neighbourhoods.",
        )
    )


@hookimpl
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register the graph evaluators."""
    register(
        EvaluatorSpec(
            name="link-prediction",
            modality="graph",
            build=f"{_P}.evaluators:LinkPrediction",
            description="ROC-AUC/AP of edges held out from pretraining (dot scores).",
        )
    )
