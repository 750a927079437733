"""selfsup-audio: speech SSL, speaker verification and speech deepfake detection.

The hook implementations are in :mod:`selfsup_audio.plugin`; the components live in
one module per family (``io``, ``features``, ``views``, ``datasets``, ``corpus``,
``fakes``, ``encoders/``, ``objectives/``, ``evaluators/``). Importing this package
imports nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"
