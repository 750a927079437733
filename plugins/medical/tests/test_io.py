"""Loading real NIfTI/DICOM files (nibabel's and pydicom's test data) and every bad-file case."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from selfsup_medical.io import (
    LoadVolumed,
    VolumeFileError,
    cached,
    load_volume,
    preprocess,
    random_crop,
)


def test_nifti_loads_channel_first_with_affine(nibabel_data: Path) -> None:
    import nibabel as nib

    path = nibabel_data / "anatomical.nii"
    image = load_volume(path)
    assert image.shape == (1, 33, 41, 25) and image.dtype == torch.float32
    expected = np.asarray(nib.load(path).get_fdata(), dtype=np.float32)
    np.testing.assert_array_equal(image[0].numpy(), expected)
    np.testing.assert_allclose(np.asarray(image.affine), nib.load(path).affine)


def test_dicom_series_folder_loads_as_one_volume(dicom_series: Path) -> None:
    import pydicom

    image = load_volume(dicom_series)
    assert image.shape == (1, 128, 128, 4)
    first = pydicom.dcmread(next(iter(sorted(dicom_series.glob("*.dcm")))))
    slope = float(getattr(first, "RescaleSlope", 1))
    intercept = float(getattr(first, "RescaleIntercept", 0))
    raw = first.pixel_array.astype(np.float32) * slope + intercept
    # The four slices are copies of one: every slice holds the same values.
    assert torch.equal(image[..., 0], image[..., 3])
    assert sorted(image[..., 0].flatten().tolist()) == sorted(raw.flatten().tolist())
    assert float(image.affine[2, 2]) == pytest.approx(5.0)  # the slices' spacing


def test_single_dicom_slice_is_refused(dicom_series: Path) -> None:
    one = next(iter(dicom_series.glob("*.dcm")))
    with pytest.raises(VolumeFileError, match=f"{one.name}.*whole series"):
        load_volume(one)


def test_truncated_nifti_names_the_file(tmp_path: Path, nibabel_data: Path) -> None:
    data = (nibabel_data / "anatomical.nii").read_bytes()
    bad = tmp_path / "truncated.nii"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeFileError, match=r"truncated\.nii.*cannot be read"):
        load_volume(bad)


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti file at all" * 10)
    with pytest.raises(VolumeFileError, match=r"junk\.nii\.gz"):
        load_volume(junk)
    with pytest.raises(VolumeFileError, match="no such file"):
        load_volume(tmp_path / "absent.nii")
    with pytest.raises(VolumeFileError, match="unknown volume format"):
        (tmp_path / "scan.mha").write_bytes(b"x")
        load_volume(tmp_path / "scan.mha")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeFileError, match=r"without \.dcm"):
        load_volume(tmp_path / "empty")


def test_mis_shaped_volume(tmp_path: Path) -> None:
    import nibabel as nib

    flat = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 1), np.float32), np.eye(4)), flat)
    with pytest.raises(VolumeFileError, match=r"slice\.nii\.gz.*at least 2"):
        load_volume(flat)


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> str:
    import nibabel as nib

    nib.save(nib.Nifti1Image(data, affine), path)
    return str(path)


def test_label_on_another_grid_names_both_files(tmp_path: Path, nibabel_data: Path) -> None:
    import nibabel as nib

    src = nib.load(nibabel_data / "anatomical.nii")
    image = str(nibabel_data / "anatomical.nii")
    load = LoadVolumed(["image", "label"])
    small = _save(tmp_path / "small_label.nii.gz", np.zeros((8, 8, 8), np.uint8), src.affine)
    with pytest.raises(VolumeFileError, match=r"small_label\.nii\.gz.*another grid.*anatomical"):
        load({"image": image, "label": small})
    moved = src.affine.copy()
    moved[0, 3] += 10
    shifted = _save(tmp_path / "shifted_label.nii.gz", np.zeros(src.shape, np.uint8), moved)
    with pytest.raises(VolumeFileError, match=r"shifted_label\.nii\.gz.*another affine"):
        load({"image": image, "label": shifted})
    fractions = np.full(src.shape, 0.5, np.float32)
    soft = _save(tmp_path / "soft_label.nii.gz", fractions, src.affine)
    with pytest.raises(VolumeFileError, match=r"soft_label\.nii\.gz.*integer"):
        load({"image": image, "label": soft})
    good = _save(tmp_path / "good_label.nii.gz", np.ones(src.shape, np.uint8), src.affine)
    out = load({"image": image, "label": good})
    assert out["label"].shape == (1, *src.shape)


def test_preprocess_spacing_scaling_and_foreground(nibabel_data: Path) -> None:
    path = str(nibabel_data / "anatomical.nii")
    raw = preprocess(["image"], intensity="none", crop_foreground=False)({"image": path})
    assert raw["image"].shape == (1, 33, 41, 25)  # anatomical.nii is 2 mm, already RAS-like
    out = preprocess(["image"], spacing=4.0, crop_foreground=False)({"image": path})
    assert out["image"].shape == (1, 17, 21, 13)
    assert float(out["image"].min()) == 0.0 and float(out["image"].max()) == 1.0
    windowed = preprocess(["image"], intensity="window", window=(0, 50))({"image": path})
    assert float(windowed["image"].max()) <= 1.0
    cropped = preprocess(["image"])({"image": path})
    assert cropped["image"].shape[1:] <= raw["image"].shape[1:]
    with pytest.raises(ValueError, match="intensity='zscore'"):
        preprocess(["image"], intensity="zscore")
    with pytest.raises(ValueError, match="low < high"):
        preprocess(["image"], window=(5, 1))


def test_caches_memory_and_disk(tmp_path: Path, nibabel_data: Path) -> None:
    items = [{"image": str(nibabel_data / "anatomical.nii")}]
    transform = preprocess(["image"], crop_foreground=False)
    memory = cached(items, transform, "memory")
    disk = cached(items, transform, "disk", tmp_path / "cache")
    assert torch.equal(torch.as_tensor(memory[0]["image"]), torch.as_tensor(disk[0]["image"]))
    assert any((tmp_path / "cache").iterdir()), "PersistentDataset wrote nothing"
    again = cached(items, transform, "disk", tmp_path / "cache")  # read back from the cache
    assert torch.equal(torch.as_tensor(again[0]["image"]), torch.as_tensor(disk[0]["image"]))
    with pytest.raises(ValueError, match="cache_dir"):
        cached(items, transform, "disk")
    with pytest.raises(ValueError, match="cache='ram'"):
        cached(items, transform, "ram")


def test_random_crop_samplers() -> None:
    image = torch.rand(1, 20, 20, 20)
    label = torch.zeros(1, 20, 20, 20)
    label[0, 15:, 15:, 15:] = 1  # a small corner of class 1
    crop = random_crop(["image", "label"], (8, 8, 8), sampler="classes", num_classes=2,
                       ratios=[0, 1])  # fmt: skip
    for seed in range(5):
        crop.set_random_state(seed=seed)
        out = crop({"image": image, "label": label})[0]
        assert out["image"].shape == (1, 8, 8, 8) and bool((out["label"] == 1).any())
    padded = random_crop(["image"], (24, 24, 24))({"image": image})
    assert padded["image"].shape == (1, 24, 24, 24)
    with pytest.raises(ValueError, match="needs a label key"):
        random_crop(["image"], (8, 8, 8), sampler="classes")
    with pytest.raises(ValueError, match="sampler='grid'"):
        random_crop(["image"], (8, 8, 8), sampler="grid")


def test_broken_slice_in_a_dicom_series_names_the_folder(
    tmp_path: Path, dicom_series: Path
) -> None:
    folder = tmp_path / "broken_series"
    shutil.copytree(dicom_series, folder)
    victim = sorted(folder.glob("*.dcm"))[1]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(VolumeFileError, match="broken_series"):
        load_volume(folder)


def test_memory_cache_does_not_decode_again(tmp_path: Path, nibabel_data: Path) -> None:
    """After CacheDataset is built, the file is never read again; without cache it is."""
    path = tmp_path / "scan.nii"
    shutil.copy(nibabel_data / "anatomical.nii", path)
    transform = preprocess(["image"], crop_foreground=False)
    memory = cached([{"image": str(path)}], transform, "memory")
    plain = cached([{"image": str(path)}], transform, "none")
    path.unlink()
    assert memory[0]["image"].shape == (1, 33, 41, 25)
    with pytest.raises(VolumeFileError, match=r"scan\.nii.*no such file"):
        plain[0]
