"""Contract tests over everything the plugin registers (``selfsup.testing`` checks)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from selfsup.runtime import Runtime
from selfsup.testing import (
    check_dataset,
    check_encoder,
    check_evaluator,
    check_objective,
    check_views,
    contract_cases,
    make_batch,
)

# Small parameters per component so that every contract runs in a second or two.
ENCODER_PARAMS: dict[str, dict[str, Any]] = {
    "vision:timm": {"model": "resnet10t"},
    "vision:resnet-small": {"arch": "resnet18", "model_kwargs": {"layers": [1, 1, 1, 1]}},
    "vision:vit-tiny": {"img_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "vision:small-cnn": {"in_chans": 3, "width": 8},
    "vision:pixels": {"in_chans": 3, "size": 16},
}
VIEW_PARAMS: dict[str, dict[str, Any]] = {
    "vision:multicrop": {"n_local": 2, "local_size": 8},
}
DATASET_PARAMS: dict[str, dict[str, Any]] = {
    "vision:digits": {"size": 8},
    "vision:fashion-mnist": {"train_size": 200, "val_size": 100, "test_size": 100},
}


def _image(batch_size: int = 4, size: int = 16) -> torch.Tensor:
    return make_batch("image", batch_size=batch_size, shape=(3, size, size)).sigmoid()


@pytest.mark.parametrize("spec", contract_cases(None, "vision", "encoder"))
def test_encoder_contract(spec) -> None:
    encoder, _ = check_encoder(spec, _image(), **ENCODER_PARAMS[spec.id])
    # Grayscale uint8 batches (what the datasets store) are adapted to the encoder's channels.
    gray = (_image()[:, :1] * 255).to(torch.uint8)
    assert encoder(gray).pooled.shape == (4, encoder.embed_dim)


@pytest.mark.parametrize("spec", contract_cases(None, "vision", "views"))
def test_views_contract(spec) -> None:
    for batch in (_image(), (_image()[:, :1] * 255).to(torch.uint8)):
        views = check_views(spec, batch, **VIEW_PARAMS.get(spec.id, {}))
        if isinstance(views, dict):
            assert views["input"].shape == batch.shape
        else:
            assert views[0].shape[:2] == batch.shape[:2]


@pytest.mark.parametrize("spec", contract_cases(None, "vision", "objective"))
def test_objective_contract(spec, selfsup_pm) -> None:
    enc_spec = selfsup_pm.get("encoder", "vision:vit-tiny")
    encoder = enc_spec.create(**ENCODER_PARAMS["vision:vit-tiny"])
    views = selfsup_pm.get("views", "vision:mae-mask").create(patch_size=4)(_image())
    check_objective(spec, encoder, views, patch_size=4, in_chans=3, decoder_dim=32, decoder_heads=2)


#: Dataset id -> (conftest writer of its files in tmp_path, params besides root).
FORMAT_FILES = {
    "vision:cifar10": ("cifar10", {"val_size": 10}),
    "vision:cifar100": ("cifar100", {"val_size": 0}),
    "vision:stl10": ("stl10", {"val_size": 10, "size": 32}),
    "vision:imagenet": ("imagenet", {"val_size": 3, "size": 32}),
}


@pytest.mark.parametrize("spec", contract_cases(None, "vision", "dataset"))
def test_dataset_contract(spec, tmp_path, request) -> None:
    params = dict(DATASET_PARAMS.get(spec.id, {}))
    formats = request.getfixturevalue("formats")
    if spec.id in FORMAT_FILES:
        writer, params = FORMAT_FILES[spec.id]
        getattr(formats, writer)(tmp_path)
        params = {**params, "root": str(tmp_path)}
    if spec.id == "vision:fashion-mnist":
        params["root"] = str(request.getfixturevalue("fashion_root"))
    if spec.id == "vision:image-folder":
        from PIL import Image

        for c in ("a", "b"):
            (tmp_path / c).mkdir()
            for i in range(6):
                Image.new("L", (9, 9), 20 * i + 100 * (c == "b")).save(tmp_path / c / f"{i}.png")
        params = {"root": str(tmp_path), "size": 8}
    data = check_dataset(spec, **params)
    x, _ = data.train[0]
    assert x.dtype == torch.uint8 and x.ndim == 3
    encoder = _tiny_encoder(x.shape[0])
    feats, labels = data.embed(encoder, "train", Runtime(device=torch.device("cpu")))
    assert feats.shape == (len(data.train), encoder.embed_dim) and labels.shape == (
        len(data.train),
    )


def _tiny_encoder(in_chans: int) -> Any:
    from selfsup_vision.encoders import SmallCNN

    return SmallCNN(in_chans=in_chans, width=4)


@pytest.mark.parametrize("spec", contract_cases(None, "vision", "evaluator"))
def test_evaluator_contract(spec) -> None:
    from selfsup_vision.datasets import digits
    from selfsup_vision.encoders import SmallCNN

    metrics = check_evaluator(
        spec, SmallCNN(width=4), digits(size=8), epochs=1, batch_size=64, max_train_items=256
    )
    assert 0.0 <= metrics["finetune_acc"] <= 1.0
