"""Audio evaluators: ``verification``, ``probe``, ``deepfake``, ``ltdnn``.

Shared pieces: ``metrics`` (EER, minDCF, ROC/DET), ``heads`` (L-TDNN), ``fusion``.
"""

from __future__ import annotations
