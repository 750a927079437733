"""Datasets: Colin27 + AAL (real, Debian mricron-data) and a user's NIfTI/DICOM folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from selfsup.testing import check_dataset, load_plugins
from selfsup_medical.atlas import REGIONS, label_names, region_lookup, region_of
from selfsup_medical.datasets import nifti_folder
from selfsup_medical.io import VolumeFileError


def test_region_rules() -> None:
    assert region_of("Precentral_L") == 1 and region_of("Angular_R") == 2
    assert region_of("Temporal_Pole_Mid_L") == 3 and region_of("Calcarine_R") == 4
    assert region_of("Amygdala_L") == 5 and region_of("Thalamus_R") == 6
    assert region_of("Vermis_1_2") == 7 and region_of("Unknown_L") == 0
    with pytest.raises(ValueError, match="without a region"):
        region_lookup({1: "Precentral_L", 2: "Mystery_R"})


def test_aal_names_all_grouped(mricron_root: Path) -> None:
    names = label_names(mricron_root / "aal.nii.txt")
    lut = region_lookup(names)
    assert len(names) == 116 and set(lut[1:].tolist()) == set(range(1, len(REGIONS) + 1))


def test_colin_contract_and_hemisphere_split(colin) -> None:
    spec = load_plugins(strict=False).registry.get("dataset", "medical:colin27-aal")
    assert spec is not None
    data = colin
    assert data.task == "segmentation" and data.num_classes == 8
    assert data.label_shape == (32, 32, 32) and data.meta["class_names"][0] == "background"
    left, right = data.meta["x_range_mm"]["left"], data.meta["x_range_mm"]["right"]
    assert left[1] < 0 < right[0], "train (left) and test (right) voxels must not overlap"
    for name in ("train", "val", "test"):
        x, y = data.split(name)[0]
        assert x.shape == (1, 32, 32, 32) and x.dtype == torch.float32
        assert y.shape == (32, 32, 32) and y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) < 8
    # Every region is present in both hemispheres, in comparable amounts (real anatomy).
    counts = {}
    for split in ("train", "test"):
        _, label = data.meta["volumes"][split][0]
        counts[split] = torch.bincount(label.flatten(), minlength=8)[1:].double()
    assert bool((counts["train"] > 0).all()) and bool((counts["test"] > 0).all())
    ratio = counts["train"] / counts["test"]
    assert bool(((ratio > 0.7) & (ratio < 1.4)).all()), ratio
    # The affine of the test half maps its first voxel into the right hemisphere.
    affine = data.meta["affines"]["test"][0]
    assert (affine @ np.array([0, 0, 0, 1.0]))[0] == pytest.approx(right[0])


def test_colin_crops_are_seeded_per_item_and_tiles_cover(colin) -> None:
    a, b = colin.train[3], colin.train[3]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(colin.train[4][0], a[0])
    # Class-balanced sampling puts foreground in most crops.
    fg = [bool((colin.train[i][1] > 0).any()) for i in range(8)]
    assert sum(fg) >= 6
    image, _ = colin.meta["volumes"]["test"][0]
    n_tiles = int(np.prod([-(-s // 32) for s in image.shape[1:]]))
    assert len(colin.test) == n_tiles


def test_crop_footprint_is_exactly_the_crops_voxels(colin) -> None:
    """``footprint(i)`` marks the voxels crop ``i`` holds (what validation leaves out)."""
    image, _ = colin.meta["volumes"]["train"][0]
    for index in (0, 5):
        volume, mask = colin.train.footprint(index)
        crop, _ = colin.train[index]
        assert volume == 0 and mask.shape == image.shape[1:]
        box = [slice(int(i.min()), int(i.max()) + 1) for i in mask.nonzero().T]
        assert int(mask.sum()) == int(np.prod([b.stop - b.start for b in box]))
        sides = [b.stop - b.start for b in box]
        assert sides == [min(32, s) for s in image.shape[1:]]
        # the box's voxels are the crop's, up to the crop's end padding (offset 0-2)
        inner = image[0][tuple(box)]
        offsets = [(a, b, c) for a in range(3) for b in range(3) for c in range(3)]
        windows = [
            crop[0][tuple(slice(o, o + n) for o, n in zip(off, sides, strict=True))]
            for off in offsets
        ]
        assert any(torch.equal(inner, w) for w in windows), "the footprint is not the crop's"
    assert not torch.equal(colin.train.footprint(0)[1], colin.train.footprint(5)[1])
    with pytest.raises(IndexError, match="out of range"):
        colin.train.footprint(len(colin.train))


def test_colin_missing_files_message(tmp_path: Path) -> None:
    from selfsup_medical.datasets import colin27_aal

    with pytest.raises(FileNotFoundError, match="mricron-data"):
        colin27_aal(root=str(tmp_path))
    with pytest.raises(ValueError, match="image='t2'"):
        colin27_aal(image="t2")


def test_nifti_folder_labelled_splits_by_file(labelled_folder: Path) -> None:
    data = nifti_folder(str(labelled_folder), crop_size=16, crops_per_volume=3,
                        val_fraction=0.34, test_fraction=0.34, seed=1)  # fmt: skip
    files = data.meta["files"]
    assert sum(len(v) for v in files.values()) == 3 and all(len(v) == 1 for v in files.values())
    assert len(data.train) == 3 and data.num_classes == 3
    assert set(data.meta["affines"]) == {"val", "test"}
    x, y = data.test[0]
    assert x.shape == (1, 16, 16, 16) and y.shape == (16, 16, 16)


def test_nifti_folder_unlabelled_with_dicom_series(
    tmp_path: Path, nibabel_data: Path, dicom_series: Path
) -> None:
    shutil.copy(nibabel_data / "anatomical.nii", tmp_path / "mri.nii")
    shutil.copytree(dicom_series, tmp_path / "ct")
    (tmp_path / "notes.txt").write_text("ignored")
    spec = load_plugins(strict=False).registry.get("dataset", "medical:nifti-folder")
    data = check_dataset(spec, root=str(tmp_path), crop_size=(16, 16, 4), crops_per_volume=2,
                         val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    assert data.task == "none" and len(data.train) == 4 and data.test is None
    x, y = data.train[0]
    assert x.shape == (1, 16, 16, 4) and y == -1


def test_nifti_folder_errors(tmp_path: Path, labelled_folder: Path, nibabel_data: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        nifti_folder(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no NIfTI file"):
        nifti_folder(str(tmp_path / "empty"))
    shutil.copy(nibabel_data / "anatomical.nii", labelled_folder / "extra.nii")
    with pytest.raises(VolumeFileError, match=r"extra\.nii.*label_suffix=null"):
        nifti_folder(str(labelled_folder))
    (labelled_folder / "extra.nii").unlink()
    with pytest.raises(ValueError, match="sum below 1"):
        nifti_folder(str(labelled_folder), val_fraction=0.5, test_fraction=0.5)
    bad = labelled_folder / "case0.nii"
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(VolumeFileError, match=r"case0\.nii"):
        nifti_folder(str(labelled_folder), crop_size=16)
