"""Shared fixtures: one torch thread, the real volumes (nibabel, pydicom, Colin27 + AAL)."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import Encoder

MRICRON = Path(os.environ.get("SELFSUP_MRICRON", "/usr/share/mricron/templates"))

#: Tiny versions of every encoder the plugin registers (32^3 inputs).
TINY_ENCODERS = {
    "medical:swin": {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 3, 6]},
    "medical:resnet3d": {"depth": 10, "width": 8},
    "medical:unet-encoder": {"channels": [8, 16, 32, 64]},
    "medical:vit3d": {
        "img_size": 32, "patch_size": 8, "hidden_size": 48, "mlp_dim": 96,
        "num_layers": 4, "num_heads": 4,
    },
}  # fmt: skip


def _skip_or_fail(msg: str) -> None:
    """Skip when real data is absent; fail under CI=true (CI must have it)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Seed, and run on one intra-op thread (small tensors on a shared machine)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_tiny_encoder() -> Callable[[str], Encoder]:
    """A factory of the tiny version (:data:`TINY_ENCODERS`) of an encoder id."""

    def make(eid: str) -> Encoder:
        return get_component("encoder", eid).create(**TINY_ENCODERS[eid])

    return make


@pytest.fixture(params=sorted(TINY_ENCODERS))
def tiny_encoder(
    request: pytest.FixtureRequest, make_tiny_encoder: Callable[[str], Encoder]
) -> Encoder:
    """Each encoder the plugin registers in its tiny version, one test run per encoder."""
    return make_tiny_encoder(request.param)


@pytest.fixture(scope="session")
def mricron_root() -> Path:
    """Debian's mricron-data templates folder; skip when absent, fail under CI=true."""
    if not all((MRICRON / f).is_file() for f in ("ch2.nii.gz", "aal.nii.gz", "aal.nii.txt")):
        _skip_or_fail(
            f"Colin27/AAL not found in {MRICRON} (apt-get install mricron-data, or set "
            "SELFSUP_MRICRON)"
        )
    return MRICRON


@pytest.fixture(scope="session")
def colin(mricron_root: Path):
    """``medical:colin27-aal`` at 2 mm with 32^3 crops (built once per session)."""
    from selfsup_medical.datasets import colin27_aal

    return colin27_aal(root=str(mricron_root), spacing=2.0, crop_size=32, train_crops=16)


@pytest.fixture(scope="session")
def nibabel_data() -> Path:
    """nibabel's bundled test volumes (a real T1 crop: anatomical.nii)."""
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data"


@pytest.fixture(scope="session")
def dicom_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-slice DICOM series made from pydicom's real CT_small.dcm slice (5 mm apart)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder = tmp_path_factory.mktemp("dicom") / "ct_series"
    folder.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k in range(4):
        ds = copy.deepcopy(source)
        ds.InstanceNumber = k + 1
        position = [float(v) for v in source.ImagePositionPatient]
        position[2] += 5.0 * k
        ds.ImagePositionPatient = position
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"slice{k}.dcm")
    return folder


@pytest.fixture
def labelled_folder(tmp_path: Path, nibabel_data: Path) -> Path:
    """A folder of 3 copies of nibabel's anatomical.nii with intensity-threshold labels."""
    import nibabel as nib
    import numpy as np

    src = nib.load(nibabel_data / "anatomical.nii")
    data = np.asarray(src.get_fdata(), dtype=np.float32)
    for i in range(3):
        name = f"case{i}"
        shutil.copy(nibabel_data / "anatomical.nii", tmp_path / f"{name}.nii")
        label = np.digitize(data, np.percentile(data, [50, 80])).astype(np.uint8)
        nib.save(nib.Nifti1Image(label, src.affine), tmp_path / f"{name}_label.nii.gz")
    return tmp_path
