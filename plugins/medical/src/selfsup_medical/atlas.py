"""The AAL atlas on Colin27 (Debian ``mricron-data``): files, label names and regions.

The 116 AAL labels are grouped by name into seven anatomical regions, the classes
of the ``medical:colin27-aal`` segmentation task (0 is background: everything that
is not AAL grey matter, white matter and CSF included).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

__all__ = [
    "REGIONS",
    "REGION_RULES",
    "atlas_paths",
    "label_names",
    "region_lookup",
    "region_of",
]

#: Default folder of the Debian package's templates (``SELFSUP_MRICRON`` overrides it).
TEMPLATES = Path("/usr/share/mricron/templates")

#: Region names, class 1..7 in this order (class 0 is background).
REGIONS: tuple[str, ...] = (
    "frontal",
    "parietal",
    "temporal",
    "occipital",
    "limbic-insula",
    "subcortical",
    "cerebellum",
)

#: Name prefixes of the AAL labels (side suffix removed) per region.
REGION_RULES: dict[str, tuple[str, ...]] = {
    "frontal": (
        "Precentral",
        "Frontal_",
        "Rolandic_Oper",
        "Supp_Motor_Area",
        "Olfactory",
        "Rectus",
        "Paracentral_Lobule",
    ),
    "parietal": ("Postcentral", "Parietal_", "SupraMarginal", "Angular", "Precuneus"),
    "temporal": ("Heschl", "Temporal_", "Fusiform"),
    "occipital": ("Calcarine", "Cuneus", "Lingual", "Occipital_"),
    "limbic-insula": ("Insula", "Cingulum_", "Hippocampus", "ParaHippocampal", "Amygdala"),
    "subcortical": ("Caudate", "Putamen", "Pallidum", "Thalamus"),
    "cerebellum": ("Cerebelum_", "Vermis_"),
}


def atlas_paths(root: str | Path | None = None) -> dict[str, Path]:
    """The T1 image, the AAL label map and its names file.

    Args:
        root: Folder holding ``ch2.nii.gz``, ``aal.nii.gz`` and ``aal.nii.txt``;
            default ``$SELFSUP_MRICRON`` or ``/usr/share/mricron/templates``.

    Raises:
        FileNotFoundError: A file is missing; the message says how to install it.
    """
    folder = Path(root or os.environ.get("SELFSUP_MRICRON", "") or TEMPLATES)
    paths = {
        "image": folder / "ch2.nii.gz",
        "label": folder / "aal.nii.gz",
        "names": folder / "aal.nii.txt",
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Colin27/AAL files not found: {', '.join(missing)}. Install Debian's "
            "mricron-data (apt-get install mricron-data), or pass root= (or set "
            "SELFSUP_MRICRON) to a folder holding ch2.nii.gz, aal.nii.gz and aal.nii.txt"
        )
    return paths


def label_names(path: str | Path) -> dict[int, str]:
    """Read ``aal.nii.txt`` (lines ``index name code``) into ``{index: name}``.

    Raises:
        ValueError: A line that is not ``index name [code]``; the message names the file.
    """
    names: dict[int, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{number}: expected 'index name [code]', got {line!r}")
        names[int(parts[0])] = parts[1]
    if not names:
        raise ValueError(f"{path}: no label names")
    return names


def region_of(name: str) -> int:
    """The region class (1..7) of an AAL label name, or 0 when no rule matches."""
    base = re.sub(r"_[LR]$", "", name)
    for cls, region in enumerate(REGIONS, start=1):
        if any(base.startswith(prefix) for prefix in REGION_RULES[region]):
            return cls
    return 0


def region_lookup(names: dict[int, str]) -> np.ndarray:
    """A table ``lut[aal_index] -> region class`` (index 0 and unknown labels map to 0).

    Raises:
        ValueError: A label name that no region rule covers (the atlas changed).
    """
    lut = np.zeros(max(names) + 1, dtype=np.int64)
    unmatched = []
    for index, name in names.items():
        lut[index] = region_of(name)
        if lut[index] == 0:
            unmatched.append(name)
    if unmatched:
        raise ValueError(
            f"AAL labels without a region: {unmatched}; extend selfsup_medical.atlas.REGION_RULES"
        )
    return lut
