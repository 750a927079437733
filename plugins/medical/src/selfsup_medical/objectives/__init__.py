"""The 3-D self-supervised objectives of the medical plugin.

* :mod:`.voco`: VoCo position prediction over a grid of base crops (``medical:voco``).
* :mod:`.swin_pretext`: SwinUNETR's rotation + inpainting + contrastive pretext
  (``medical:swin-pretext``).
* :mod:`.genesis`: Models Genesis restoration (``medical:genesis``).
* :mod:`.local_global`: global + local contrastive learning (``medical:local-global``).
* :mod:`.masked_volume`: masked volume modelling (``medical:masked-volume``).

:mod:`.common` holds the shared input checks, heads and masks. Modules are imported
only when a component is built.
"""

from __future__ import annotations
