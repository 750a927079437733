"""selfsup-ecg-example: a template third-party selfsup plugin (1-D signals such as ECG).

Importing the package imports nothing heavy; the components live in their own modules
and are referenced lazily from :mod:`selfsup_ecg_example.plugin`.
"""

from __future__ import annotations

__version__ = "0.1.0"
