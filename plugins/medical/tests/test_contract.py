"""Contract tests over the plugin's encoders, views and data-free datasets (selfsup.testing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from selfsup.testing import (
    check_dataset,
    check_encoder,
    check_feature_maps,
    check_views,
    contract_cases,
    make_batch,
)

#: Small settings per encoder so that each contract runs in about a second on one thread.
ENCODER_PARAMS: dict[str, dict[str, Any]] = {
    "medical:swin": {"feature_size": 12, "depths": (1, 1, 1, 1)},
    "medical:resnet3d": {"depth": 10, "width": 8},
    "medical:unet-encoder": {"channels": (8, 16, 32, 64)},
    "medical:vit3d": {
        "img_size": 32,
        "patch_size": 8,
        "hidden_size": 48,
        "mlp_dim": 96,
        "num_layers": 4,
        "num_heads": 4,
    },
}


def _volumes(batch_size: int = 2, size: int = 32) -> torch.Tensor:
    return make_batch("volume", batch_size=batch_size, size=size)


@pytest.mark.parametrize("spec", contract_cases(None, "medical", "encoder"))
def test_encoder_contract(spec) -> None:
    encoder, out = check_encoder(spec, _volumes(), **ENCODER_PARAMS[spec.id])
    check_feature_maps(out, 2, spec.id)
    maps = out.feature_maps
    assert maps is not None
    # The declared interface matches what forward returns, finest map first.
    assert [m.shape[1] for m in maps] == encoder.feature_channels
    assert [32 // m.shape[-1] for m in maps] == encoder.feature_strides
    assert encoder.feature_strides == sorted(encoder.feature_strides)
    assert encoder.in_chans == 1 and 32 % encoder.size_multiple == 0
    assert out.tokens is not None and out.tokens.shape[-1] == encoder.embed_dim


@pytest.mark.parametrize("spec", contract_cases(None, "medical", "views"))
def test_views_contract(spec) -> None:
    views = check_views(spec, _volumes(3, 16), size=16)
    assert len(views) == 2 and all(v.shape == (3, 1, 16, 16, 16) for v in views)


def test_nifti_folder_contract(labelled_folder: Path) -> None:
    from selfsup.testing import load_plugins

    spec = load_plugins(strict=False).registry.get("dataset", "medical:nifti-folder")
    data = check_dataset(
        spec,
        root=str(labelled_folder),
        crop_size=16,
        crops_per_volume=2,
        val_fraction=0.34,
        test_fraction=0.34,
    )
    assert data.task == "segmentation" and data.num_classes == 3
    assert data.label_shape == (16, 16, 16)
