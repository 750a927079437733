"""Streaming image folders: same items as in memory, workers, errors, device decoding."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from rich.console import Console
from selfsup import load_config_text, run_experiment
from selfsup.runtime import Runtime
from selfsup_vision.decode import decode_file
from selfsup_vision.image_folder import image_folder
from selfsup_vision.streaming import JPEGBatch, StreamingImageDataset, StreamingSplits


def _all(ds) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])


def test_stream_and_memory_give_the_same_splits(tmp_path, formats) -> None:
    formats.jpeg_folder(tmp_path, per_class=10, side=40)
    mem = image_folder(str(tmp_path), size=[16, 12], mode="memory", val_fraction=0.2)
    stream = image_folder(str(tmp_path), size=[16, 12], mode="stream", val_fraction=0.2)
    assert type(mem).__name__ == "DataSplits" and isinstance(stream, StreamingSplits)
    assert stream.meta["mode"] == "stream" and mem.meta["mode"] == "memory"
    assert stream.num_classes == mem.num_classes == 2
    for split in ("train", "val", "test"):
        x, y = _all(getattr(stream, split))
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 16, 12)
        assert torch.equal(x, getattr(mem, split).images)
        assert torch.equal(y, getattr(mem, split).labels)


def test_auto_mode_streams_above_the_memory_limit(tmp_path, formats) -> None:
    formats.jpeg_folder(tmp_path, per_class=4, side=24)
    assert image_folder(str(tmp_path), size=16).meta["mode"] == "memory"
    big = image_folder(str(tmp_path), size=256, memory_limit_mb=1)  # 8 x 3 x 256^2 > 1 MB
    assert big.meta["mode"] == "stream" and big.meta["images"] == 8


def test_given_splits_and_unlabelled_stream(tmp_path, formats) -> None:
    for split in ("train", "val"):
        formats.jpeg_folder(tmp_path / split, per_class=3, side=20)
    data = image_folder(str(tmp_path), size=8, mode="stream", channels=1)
    assert len(data.train) == len(data.val) == 6 and data.test is None
    assert data.train[0][0].shape == (1, 8, 8)
    free = image_folder(str(tmp_path), size=8, mode="stream", unlabelled=True)
    assert free.num_classes == 0 and set(free.train.labels.tolist()) == {-1}


def test_loader_workers_pin_and_persist(tmp_path, formats) -> None:
    formats.jpeg_folder(tmp_path, per_class=6, side=32)
    data = image_folder(str(tmp_path), size=16, mode="stream", val_fraction=0, test_fraction=0)
    loader = torch.utils.data.DataLoader(
        data.train, batch_size=4, num_workers=2, persistent_workers=True, prefetch_factor=2,
        collate_fn=data.collate,
    )  # fmt: skip
    first = [x for x, _ in loader]
    again = [x for x, _ in loader]  # the same workers serve a second epoch
    mem = image_folder(str(tmp_path), size=16, mode="memory", val_fraction=0, test_fraction=0)
    assert torch.equal(torch.cat(first), mem.train.images)
    assert torch.equal(torch.cat(again), mem.train.images)


def _corrupt(tmp_path, formats) -> str:
    formats.jpeg_folder(tmp_path, per_class=5, side=24)
    bad = tmp_path / "class0" / "2.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # header intact, scan data cut
    return str(bad)


def test_corrupt_image_is_named_in_a_worker(tmp_path, formats) -> None:
    bad = _corrupt(tmp_path, formats)
    data = image_folder(str(tmp_path), size=8, mode="stream", val_fraction=0, test_fraction=0)
    loader = torch.utils.data.DataLoader(data.train, batch_size=5, num_workers=1)
    with pytest.raises(ValueError, match=r"2\.jpg.*truncated or corrupt.*on_error: skip"):
        list(loader)
    with pytest.raises(ValueError, match=r"2\.jpg"):
        image_folder(str(tmp_path), size=8, mode="memory")
    assert bad


def test_on_error_skip_counts_and_keeps_batch_size(tmp_path, formats) -> None:
    _corrupt(tmp_path, formats)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*2\.jpg"):
        mem = image_folder(str(tmp_path), size=8, mode="memory", on_error="skip",
                           val_fraction=0, test_fraction=0)  # fmt: skip
    assert len(mem.train) == 9
    data = image_folder(str(tmp_path), size=8, mode="stream", on_error="skip",
                        val_fraction=0, test_fraction=0)  # fmt: skip
    loader = torch.utils.data.DataLoader(data.train, batch_size=5, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sizes = [len(x) for x, _ in loader] + [len(x) for x, _ in loader]
    assert sizes == [5, 5, 5, 5]
    assert data.train.skipped == 1  # counted once, across workers and epochs


def test_bad_parameters_are_named(tmp_path, formats) -> None:
    formats.jpeg_folder(tmp_path, per_class=2, side=16)
    with pytest.raises(ValueError, match="mode='fast'"):
        image_folder(str(tmp_path), mode="fast")
    with pytest.raises(ValueError, match="on_error='ignore'"):
        image_folder(str(tmp_path), on_error="ignore")
    with pytest.raises(ValueError, match="decode='device' needs mode='stream'"):
        image_folder(str(tmp_path), mode="memory", decode="device")


def test_device_decoding_batches_jpeg_bytes(tmp_path, formats) -> None:
    _corrupt(tmp_path, formats)
    (tmp_path / "class1" / "extra.png").write_bytes(b"")  # not decoded on the device
    data = image_folder(str(tmp_path), size=16, mode="stream", decode="device", on_error="skip",
                        val_fraction=0.2, test_fraction=0)  # fmt: skip
    train = data.train
    assert isinstance(train, StreamingImageDataset) and train.encoded
    good = [i for i in range(len(train)) if not train.path(i).endswith(("2.jpg", ".png"))][:4]
    batch, labels = data.collate([train[i] for i in good])
    assert isinstance(batch, JPEGBatch) and labels.tolist() == train.labels[good].tolist()
    x = batch.pin_memory().to("cpu") if torch.cuda.is_available() else batch.to("cpu")
    ref = torch.stack([decode_file(train.path(i), 3, (16, 16)) for i in good])
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 16, 16)
    assert (x.float() - ref.float()).abs().mean() < 8  # two decoders, two resizers
    assert data.val[0][0].shape == (3, 16, 16)  # evaluation splits decode in workers
    strict = JPEGBatch(batch.items, 3, (16, 16), "stretch", "raise")
    bad = StreamingImageDataset(
        tmp_path, ["class0/2.jpg"], torch.zeros(1), 3, (16, 16), encoded=True
    )
    strict.items = [*batch.items[:2], bad[0][0]]
    with pytest.raises(ValueError, match=r"2\.jpg"):
        strict.to("cpu")


def test_embed_uses_workers(tmp_path, formats) -> None:
    from selfsup_vision.encoders import SmallCNN

    formats.jpeg_folder(tmp_path, per_class=6, side=20)
    data = image_folder(str(tmp_path), size=16, mode="stream", eval_workers=2)
    feats, labels = data.embed(SmallCNN(in_chans=3, width=4), "train", Runtime(torch.device("cpu")))
    assert feats.shape[0] == labels.shape[0] == len(data.train)
    assert torch.equal(labels, data.train.labels)


@pytest.mark.parametrize("decode", ["workers", "device"])
def test_streaming_folder_trains_end_to_end(tmp_path, formats, decode) -> None:
    formats.jpeg_folder(tmp_path / "jpegs", per_class=12, side=32)
    cfg = load_config_text(
        f"""
name: stream
output_dir: {tmp_path / "runs"}
data:
  id: vision:image-folder
  params: {{root: {tmp_path / "jpegs"}, size: 16, mode: stream, decode: {decode}}}
encoder: {{id: vision:small-cnn, params: {{in_chans: 3, width: 4}}}}
views: {{id: vision:simclr, params: {{scale: [0.3, 1.0]}}}}
objective: {{id: core:simclr, params: {{hidden_dim: 16, out_dim: 8}}}}
evaluators: [core:knn]
baseline: false
train: {{epochs: 1, batch_size: 8, num_workers: 1, device: cpu, progress: false}}
"""
    )
    result = run_experiment(cfg, console=Console(file=io.StringIO()), progress=False)
    assert not result.failed, result.runs
    assert "knn_acc" in result.runs[0]["metrics"]


def test_stream_mode_passes_the_dataset_contract(tmp_path, formats, selfsup_pm) -> None:
    from selfsup.testing import check_dataset

    formats.jpeg_folder(tmp_path, per_class=5, side=24)
    spec = selfsup_pm.get("dataset", "vision:image-folder")
    data = check_dataset(spec, root=str(tmp_path), size=8, mode="stream", resize="crop")
    assert isinstance(data, StreamingSplits) and data.train[0][0].shape == (3, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvJPEG decoding needs a CUDA device")
def test_device_decoding_on_cuda_matches_pil(tmp_path, formats) -> None:
    formats.jpeg_folder(tmp_path, per_class=4, side=40)
    data = image_folder(str(tmp_path), size=24, mode="stream", decode="device", val_fraction=0,
                        test_fraction=0)  # fmt: skip
    batch, _ = data.collate([data.train[i] for i in range(len(data.train))])
    x = batch.pin_memory().to(torch.device("cuda"))
    ref = torch.stack([decode_file(data.train.path(i), 3, (24, 24)) for i in range(len(x))])
    assert x.is_cuda and x.shape == ref.shape
    assert (x.cpu().float() - ref.float()).abs().mean() < 8
