"""selfsup-medical: the 3-D medical-imaging plugin of selfsup, built on MONAI.

Registers NIfTI/DICOM datasets (a user's folder, and Colin27 + the AAL atlas from
Debian's ``mricron-data``), 3-D crop views, MONAI encoders (the SwinUNETR Swin
encoder, a 3-D ResNet, a UNet encoder, a 3-D ViT) with multi-scale feature maps,
the VoCo, SwinUNETR-pretext, Models-Genesis, local-global contrastive and
masked-volume objectives, and few-label segmentation evaluators.
``selfsup_medical.plugin`` holds the hook implementations; the components (and
MONAI) are imported only when built.
"""

from __future__ import annotations

__version__ = "0.1.0"
