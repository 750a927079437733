"""Hook implementations of the vision plugin (``vision:`` ids).

Only lazy ``"module:attr"`` references here: listing plugins or components never
imports timm, torchvision or PIL.
"""

from __future__ import annotations

from collections.abc import Callable

from selfsup.hookspecs import hookimpl
from selfsup.specs import DatasetSpec, EncoderSpec, EvaluatorSpec, ObjectiveSpec, ViewSpec

_PKG = "selfsup_vision"


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the image encoders."""
    for name, ref, desc, tags in [
        (
            "timm",
            f"{_PKG}.timm_encoders:TimmEncoder",
            "Any timm model by name (pretrained=False; optional local weights file).",
            ("timm",),
        ),
        (
            "resnet-small",
            f"{_PKG}.timm_encoders:ResNetSmall",
            "timm ResNet-18/34/50 with a 3x3 stride-1 stem and no max-pool, for 28-64 px.",
            ("timm", "cnn"),
        ),
        (
            "vit-tiny",
            f"{_PKG}.timm_encoders:ViTTiny",
            "Small timm VisionTransformer (ViT-Ti widths, 4 px patches, 32 px images).",
            ("timm", "vit"),
        ),
        (
            "small-cnn",
            f"{_PKG}.encoders:SmallCNN",
            "4-stage CNN, ~0.39M parameters: fast enough to pretrain on a CPU.",
            ("cnn",),
        ),
        (
            "pixels",
            f"{_PKG}.encoders:Pixels",
            "Raw pixels, normalised and flattened: the no-learning baseline.",
            ("baseline",),
        ),
    ]:
        register(EncoderSpec(name=name, build=ref, description=desc, modality="image", tags=tags))


@hookimpl
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register the batched, on-device image view makers."""
    for name, ref, desc in [
        (
            "simclr",
            f"{_PKG}.views:SimCLRViews",
            "Two views: random resized crop, flip, colour jitter, grayscale, optional blur.",
        ),
        (
            "byol",
            f"{_PKG}.views:BYOLViews",
            "BYOL's asymmetric views (always-blur view 1, blur/solarize view 2).",
        ),
        (
            "multicrop",
            f"{_PKG}.views:MultiCropViews",
            "DINO multi-crop: 2 global and N local crops, returned as a list.",
        ),
        (
            "mae-mask",
            f"{_PKG}.masking:MAEMaskViews",
            "Image + patch mask {'input', 'mask'}: random, block (BEiT) or grid masking.",
        ),
    ]:
        register(ViewSpec(name=name, build=ref, description=desc, modality="image"))


@hookimpl
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register MAE (the image objectives that need no plugin live in the core)."""
    register(
        ObjectiveSpec(
            name="mae",
            build=f"{_PKG}.objectives:MAE",
            description="Masked autoencoder: ViT encoder on visible patches, pixel decoder.",
            modality="image",
            tags=("masked",),
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the image datasets (local files only)."""
    for name, ref, desc in [
        (
            "digits",
            f"{_PKG}.datasets:digits",
            "scikit-learn's 1797 real 8x8 handwritten digits, upsampled; stratified splits.",
        ),
        (
            "fashion-mnist",
            f"{_PKG}.datasets:fashion_mnist",
            "Fashion-MNIST 60k/10k from the Debian package's idx files (or a root folder).",
        ),
        (
            "image-folder",
            f"{_PKG}.image_folder:image_folder",
            "Class-per-subfolder images read with PIL; in memory or streamed (mode: auto).",
        ),
        (
            "cifar10",
            f"{_PKG}.cifar:cifar10",
            "CIFAR-10 from the python batches on disk (safe unpickling, no download).",
        ),
        (
            "cifar100",
            f"{_PKG}.cifar:cifar100",
            "CIFAR-100 (fine or coarse labels) from the python files on disk.",
        ),
        (
            "stl10",
            f"{_PKG}.stl10:stl10",
            "STL-10 from its binary files, memory-mapped (folds, unlabelled set).",
        ),
        (
            "imagenet",
            f"{_PKG}.imagenet:imagenet",
            "ImageNet-1k train/val folders + LOC_synset_mapping.txt, streamed from disk.",
        ),
    ]:
        register(DatasetSpec(name=name, build=ref, description=desc, modality="image"))


@hookimpl
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register the fine-tuning evaluator."""
    register(
        EvaluatorSpec(
            name="finetune",
            build=f"{_PKG}.evaluators:FineTune",
            description="Fine-tune encoder + linear head (mixup/cutmix); epoch chosen on val.",
            modality="image",
        )
    )
