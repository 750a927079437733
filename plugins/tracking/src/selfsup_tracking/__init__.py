"""selfsup-tracking: TensorBoard and MLflow sinks on selfsup's run events.

Switched on per experiment with ``tracking: [tensorboard, mlflow]`` in the config or
``selfsup run EXP.yaml --tracking mlflow``. The plugin opens the ``tracker`` kind:
another plugin may register its own tracker (a :class:`Tracker` subclass) with
``register_components`` and this plugin drives it like the built-in ones.
"""

from __future__ import annotations

from selfsup_tracking.records import Tracker, TrackerSpec

__all__ = ["Tracker", "TrackerSpec"]
__version__ = "0.1.0"
