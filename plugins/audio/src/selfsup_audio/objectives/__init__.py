"""Audio objectives: ``ssast``, ``masked_prediction``, ``wav2vec2``, ``cluster_dino``."""

from __future__ import annotations
