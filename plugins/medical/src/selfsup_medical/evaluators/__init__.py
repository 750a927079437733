"""Evaluators of the medical plugin.

* :mod:`.segmentation`: few-label fine-tuning of a UNETR-style decoder
  (:mod:`.decoder`) on the encoder, scored with MONAI's ``DiceMetric`` after
  sliding-window inference (``medical:segmentation``).
* :mod:`.patch_probe`: a linear probe on patch-level region labels from frozen pooled
  embeddings, beside the same probe on raw intensities (``medical:patch-probe``).
"""

from __future__ import annotations
