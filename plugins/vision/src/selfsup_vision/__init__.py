"""selfsup-vision: the image plugin of selfsup.

Registers timm and small-image encoders, batched on-device view makers (SimCLR, BYOL,
DINO multi-crop, MAE masks), the MAE objective, image datasets (scikit-learn digits,
Fashion-MNIST, image folders) and a fine-tuning evaluator. ``selfsup_vision.plugin``
holds the hook implementations; the components are imported only when built.
"""

from __future__ import annotations

__version__ = "0.1.0"
