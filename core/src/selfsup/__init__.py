"""selfsup: self-supervised representation learning and its security, across modalities.

The public API: the hook markers, the spec records and the interfaces. Plugins import
from here::

    from selfsup import hookimpl, EncoderSpec, Encoder, EncoderOutput
"""

from __future__ import annotations

from selfsup.hookspecs import hookimpl, hookspec
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
from selfsup.specs import (
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    ObjectiveSpec,
    RoutineSpec,
    ViewSpec,
)

__version__ = "0.1.0"

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
