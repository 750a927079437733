"""selfsup-security: backdoors, adversarial attacks and detectors for SSL encoders.

Import the submodules you need (``selfsup_security.triggers``, ``.attacks``,
``.detectors``, ...); importing the package itself loads nothing heavy, so that
``selfsup plugins`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
