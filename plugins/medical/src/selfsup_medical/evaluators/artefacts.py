"""Segmentation artefacts: label maps as NIfTI and three orthogonal slices as a PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["write_nifti", "write_slices"]


def write_nifti(path: Path, mask: Tensor, meta: dict[str, Any], index: int) -> None:
    """Write a label map as NIfTI (atomically) on the volume's grid.

    The affine is ``meta["affines"]["test"][index]`` when the dataset gives one, else a
    diagonal of ``meta["spacing_mm"]`` (1 mm when absent).
    """
    import nibabel as nib
    import numpy as np

    affines = meta.get("affines", {})
    affine = affines.get("test", [None] * (index + 1))[index] if isinstance(affines, dict) else None
    if affine is None:
        affine = np.diag([float(meta.get("spacing_mm", 1.0))] * 3 + [1.0])
    image = nib.Nifti1Image(mask.cpu().numpy().astype(np.uint8), np.asarray(affine, float))
    tmp = path.with_name(path.name + ".tmp.nii.gz")
    nib.save(image, str(tmp))
    os.replace(tmp, path)


def write_slices(path: Path, image: Tensor, label: Tensor, pred: Tensor, k: int) -> bool:
    """A PNG of the three central orthogonal slices: image, truth, prediction.

    Returns ``False`` (and writes nothing) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is optional
        return False
    fig, axes = plt.subplots(3, 3, figsize=(9, 9))
    centre = [s // 2 for s in image.shape]
    for axis in range(3):
        pick = [slice(None)] * 3
        pick[axis] = centre[axis]  # type: ignore[call-overload]
        for col, (vol, cmap) in enumerate(((image, "gray"), (label, "tab10"), (pred, "tab10"))):
            plane = vol[tuple(pick)].float().cpu().numpy().T
            kwargs = {"vmin": 0, "vmax": max(k - 1, 1)} if col else {}
            axes[axis, col].imshow(plane, cmap=cmap, origin="lower", **kwargs)
            axes[axis, col].axis("off")
    for col, title in enumerate(("image", "ground truth", "prediction")):
        axes[0, col].set_title(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return True
