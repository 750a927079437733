"""Audio encoders, one module per family.

``spectral`` (MFCC statistics), ``cnn1d``, ``wav2vec2``, ``ssast``, ``ecapa``.
"""

from __future__ import annotations
