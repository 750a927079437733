"""Hook implementations of the medical plugin (``medical:`` ids).

Only lazy ``"module:attr"`` references here: listing plugins or components never
imports MONAI, nibabel or pydicom.
"""

from __future__ import annotations

from collections.abc import Callable

from selfsup.hookspecs import hookimpl
from selfsup.specs import (
    ComponentSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    ObjectiveSpec,
    ViewSpec,
)

_PKG = "selfsup_medical"
_MODALITY = "volume"


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the 3-D encoders (all return pooled embeddings and feature maps)."""
    for name, ref, desc, tags in [
        (
            "swin",
            f"{_PKG}.encoders.swin:SwinEncoder",
            "The Swin transformer encoder of MONAI's SwinUNETR (5 scales, stride 2-32).",
            ("monai", "transformer"),
        ),
        (
            "resnet3d",
            f"{_PKG}.encoders.resnet:ResNet3D",
            "MONAI's 3-D ResNet (10/18/34/50) with its 4 stages as feature maps.",
            ("monai", "cnn"),
        ),
        (
            "unet-encoder",
            f"{_PKG}.encoders.unet:UNetEncoder",
            "The contracting half of a 3-D UNet built from MONAI residual blocks.",
            ("monai", "cnn"),
        ),
        (
            "vit3d",
            f"{_PKG}.encoders.vit:ViT3D",
            "MONAI's 3-D ViT; feature maps are tokens reshaped at several depths (UNETR).",
            ("monai", "transformer"),
        ),
    ]:
        register(EncoderSpec(name=name, build=ref, description=desc, modality=_MODALITY, tags=tags))


@hookimpl
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register the batched 3-D view maker."""
    register(
        ViewSpec(
            name="crops",
            build=f"{_PKG}.views:VolumeCrops",
            description="Two random 3-D crops per volume with flips, 90-degree rotations "
            "and intensity jitter, batched.",
            modality=_MODALITY,
        )
    )


@hookimpl
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register the 3-D self-supervised objectives."""
    for name, ref, desc, tags in [
        (
            "voco",
            f"{_PKG}.objectives.voco:VoCo",
            "VoCo: random crops predict their overlap with a grid of base crops by "
            "similarity, with the base-crop regularisation.",
            ("contrastive",),
        ),
        (
            "swin-pretext",
            f"{_PKG}.objectives.swin_pretext:SwinPretext",
            "SwinUNETR pretext: rotation prediction, masked-volume inpainting, contrastive.",
            ("multi-task",),
        ),
        (
            "genesis",
            f"{_PKG}.objectives.genesis:ModelsGenesis",
            "Models Genesis restoration: non-linear intensity, local shuffle, in/out-painting.",
            ("restoration",),
        ),
        (
            "local-global",
            f"{_PKG}.objectives.local_global:LocalGlobalContrast",
            "Global + local (feature-map) contrastive learning for limited-label segmentation.",
            ("contrastive",),
        ),
        (
            "masked-volume",
            f"{_PKG}.objectives.masked_volume:MaskedVolume",
            "Masked-volume modelling: reconstruct masked cubes (own cube masks or the views').",
            ("masked",),
        ),
    ]:
        register(
            ObjectiveSpec(name=name, build=ref, description=desc, modality=_MODALITY, tags=tags)
        )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the volume datasets (local files only)."""
    for name, ref, desc in [
        (
            "colin27-aal",
            f"{_PKG}.datasets:colin27_aal",
            "Colin27 T1 with AAL labels grouped into anatomical regions; train on the "
            "left hemisphere, test on the right (mricron-data).",
        ),
        (
            "colin27-patches",
            f"{_PKG}.region_patches:colin27_patches",
            "Colin27 cubes classified by their dominant AAL region; train/val on the left "
            "hemisphere, test on the right (mricron-data).",
        ),
        (
            "nifti-folder",
            f"{_PKG}.datasets:nifti_folder",
            "A folder of NIfTI volumes or DICOM series, with optional label maps matched "
            "by a filename rule.",
        ),
    ]:
        register(DatasetSpec(name=name, build=ref, description=desc, modality=_MODALITY))


@hookimpl
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register the segmentation evaluators."""
    for name, ref, desc in [
        (
            "segmentation",
            f"{_PKG}.evaluators.segmentation:SegmentationFinetune",
            "Few-label fine-tuning of a UNETR-style decoder on the encoder; Dice by "
            "sliding-window inference, per region and mean over foreground.",
        ),
        (
            "patch-probe",
            f"{_PKG}.evaluators.patch_probe:PatchProbe",
            "Linear probe on frozen pooled embeddings of patches labelled by majority region.",
        ),
    ]:
        register(EvaluatorSpec(name=name, build=ref, description=desc, modality=_MODALITY))


@hookimpl
def register_components(register: Callable[[ComponentSpec], None]) -> None:
    """Contribute the 3-D patch trigger to the ``trigger`` kind (selfsup-security's).

    Without selfsup-security nobody opens the kind: the core sets the trigger aside
    (``selfsup plugins`` lists it as not active) and the rest of the plugin loads as usual.
    """
    register(
        ComponentSpec(
            kind="trigger",
            name="patch3d",
            build=f"{_PKG}.triggers:Patch3D",
            description="A small cube of a fixed intensity pattern pasted into the volume.",
            modality=_MODALITY,
        )
    )
