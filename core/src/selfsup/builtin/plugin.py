"""The core's own plugin (``core:`` ids): objectives, evaluators, routine, transforms.

Registered through the same hooks as any third-party plugin. Factories are lazy
references, so listing them imports nothing heavy.
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
    TransformSpec,
    ViewSpec,
)

_OBJ = "selfsup.builtin.objectives"
_EVAL = "selfsup.builtin.evaluators"


@hookimpl
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register the modality-free objectives."""
    for name, ref, desc, tags in [
        (
            "simclr",
            f"{_OBJ}.infonce:SimCLR",
            "SimCLR: NT-Xent/InfoNCE over two views with a projector.",
            ("contrastive",),
        ),
        (
            "dcl",
            f"{_OBJ}.infonce:DCL",
            "Decoupled contrastive learning (NT-Xent without the positive in the denominator).",
            ("contrastive",),
        ),
        (
            "barlow-twins",
            f"{_OBJ}.barlow_twins:BarlowTwins",
            "Barlow Twins: cross-correlation to identity.",
            ("redundancy-reduction",),
        ),
        (
            "vicreg",
            f"{_OBJ}.vicreg:VICReg",
            "VICReg: variance, invariance and covariance terms.",
            ("redundancy-reduction",),
        ),
        (
            "byol",
            f"{_OBJ}.byol:BYOL",
            "BYOL: online predictor against an EMA target network.",
            ("distillation",),
        ),
        (
            "simsiam",
            f"{_OBJ}.simsiam:SimSiam",
            "SimSiam: predictor with stop-gradient, no EMA.",
            ("distillation",),
        ),
        (
            "dino",
            f"{_OBJ}.dino:DINO",
            "DINO: self-distillation with centering, sharpening and an EMA teacher.",
            ("distillation",),
        ),
    ]:
        register(ObjectiveSpec(name=name, build=ref, description=desc, tags=tags))


@hookimpl
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register the modality-free evaluators."""
    for name, ref, desc in [
        (
            "linear-probe",
            f"{_EVAL}.linear_probe:LinearProbe",
            "Linear probe on frozen features; weight decay chosen on validation data.",
        ),
        (
            "knn",
            f"{_EVAL}.knn:KNN",
            "Weighted k-nearest-neighbour classifier on frozen features (cosine).",
        ),
        (
            "rankme",
            f"{_EVAL}.rankme:RankMe",
            "RankMe: effective rank of the embeddings (label-free).",
        ),
        (
            "kmeans",
            f"{_EVAL}.clustering:KMeansClustering",
            "k-means on frozen features: NMI and ARI against labels.",
        ),
        (
            "alignment-uniformity",
            f"{_EVAL}.alignment:AlignmentUniformity",
            "Alignment of positive pairs and uniformity on the hypersphere.",
        ),
    ]:
        register(EvaluatorSpec(name=name, build=ref, description=desc))


@hookimpl
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register modality-free view makers."""
    register(
        ViewSpec(
            name="identity",
            build="selfsup.builtin.views:Identity",
            description="The batch itself as a single view (no augmentation).",
        )
    )
    register(
        ViewSpec(
            name="noise-mask",
            build="selfsup.builtin.views:NoiseMask",
            description="SCARF-like views: random feature masking (batch values or zero) + noise.",
            tags=("tabular",),
        )
    )


@hookimpl
def register_routines(register: Callable[[RoutineSpec], None]) -> None:
    """Register the default mini-batch routine."""
    register(
        RoutineSpec(
            name="minibatch",
            build="selfsup.engine.loop:MiniBatch",
            description="Mini-batch loop: distributed sampler, autocast, accumulation, checkpoints",
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the modality-free dataset (arrays from a .npz file)."""
    register(
        DatasetSpec(
            name="arrays",
            build="selfsup.builtin.datasets:ArrayDataset",
            description="Arrays x [N, ...] and y [N] from a .npz file; stratified val/test.",
        )
    )


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the modality-free encoder (an MLP over flattened items)."""
    register(
        EncoderSpec(
            name="mlp",
            build="selfsup.builtin.encoders:MLP",
            description="MLP over flattened items: Linear -> BatchNorm/LayerNorm -> activation.",
        )
    )


@hookimpl
def register_transforms(register: Callable[[TransformSpec], None]) -> None:
    """Register the modality-free data transforms."""
    register(
        TransformSpec(
            name="subsample",
            build="selfsup.builtin.transforms:Subsample",
            description="Keep a seeded (optionally stratified) part of one split.",
        )
    )
    register(
        TransformSpec(
            name="label-noise",
            build="selfsup.builtin.transforms:LabelNoise",
            description="Flip a seeded fraction of one split's labels; flags them label_noise.",
        )
    )
