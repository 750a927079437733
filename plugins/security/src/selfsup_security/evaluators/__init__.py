"""The security evaluators.

``backdoor`` (CA and ASR of a trigger through a clean probe), ``robustness`` (robust
accuracy under attacks), ``adversarial-detection`` and ``poison-detection`` (detectors
scored by AUROC). Each records its threat model with ``ctx.record(threat_model=...)``.
Import the submodule you need; this package imports nothing heavy.
"""

from __future__ import annotations
