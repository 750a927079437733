"""Detectors: of adversarial inputs (BEYOND) and of poisoned training samples (spectral).

Import the submodules (``selfsup_security.detectors.beyond``, ``.spectral``); the
plugin registers them as ``security:beyond`` and ``security:spectral``.
"""

from __future__ import annotations

from selfsup_security.detectors.base import DetectorScores, InputDetector, SampleDetector

__all__ = ["DetectorScores", "InputDetector", "SampleDetector"]
