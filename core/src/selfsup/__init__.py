"""selfsup: self-supervised representation learning and its security, across modalities.

The public API: the hook markers, the spec records and the interfaces. Plugins import
from here::

    from selfsup import hookimpl, EncoderSpec, Encoder, EncoderOutput
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from selfsup.hookspecs import hookimpl, hookspec
from selfsup.specs import (
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    ObjectiveSpec,
    RoutineSpec,
    ViewSpec,
)

if TYPE_CHECKING:
    from selfsup.interfaces import (
        DataSplits,
        Encoder,
        EncoderOutput,
        Evaluator,
        Objective,
        ObjectiveOutput,
        Routine,
        ViewMaker,
    )

__version__ = "0.1.0"

# The interfaces import torch; they load on first access so that ``import selfsup``
# (plugin discovery, ``selfsup plugins``, ``selfsup list``, pytest start-up) stays light.
_LAZY = {
    "DataSplits",
    "Encoder",
    "EncoderOutput",
    "Evaluator",
    "Objective",
    "ObjectiveOutput",
    "Routine",
    "ViewMaker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from selfsup import interfaces

        return getattr(interfaces, name)
    raise AttributeError(f"module 'selfsup' has no attribute {name!r}")


__all__ = [
    "DataSplits",
    "DatasetSpec",
    "Encoder",
    "EncoderOutput",
    "EncoderSpec",
    "Evaluator",
    "EvaluatorSpec",
    "Objective",
    "ObjectiveOutput",
    "ObjectiveSpec",
    "Routine",
    "RoutineSpec",
    "ViewMaker",
    "ViewSpec",
    "__version__",
    "hookimpl",
    "hookspec",
]
