"""selfsup: self-supervised representation learning and its security, across modalities.

The public API, under the versioning rule of ``docs/public-api.md``: everything
listed in ``__all__`` here, and the documented public modules ``selfsup.specs``,
``selfsup.interfaces``, ``selfsup.hookspecs``, ``selfsup.runtime``,
``selfsup.training``, ``selfsup.losses``, ``selfsup.evaluation``,
``selfsup.components`` and ``selfsup.testing``. Plugins import from here::

    from selfsup import hookimpl, EncoderSpec, Encoder, EncoderOutput, train_epochs

Names that need torch load on first access, so that ``import selfsup`` (plugin
discovery, ``selfsup plugins``, ``selfsup list``, pytest start-up) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from selfsup.hookspecs import hookimpl, hookspec
from selfsup.specs import (
    ComponentSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    KindSpec,
    ObjectiveSpec,
    Ref,
    RoutineSpec,
    TransformSpec,
    ViewSpec,
)

if TYPE_CHECKING:
    from selfsup.components import build_component, get_component, list_components
    from selfsup.config import ConfigError, load_config, load_config_text
    from selfsup.engine.runner import run_experiment
    from selfsup.export import export_encoder
    from selfsup.interfaces import (
        TASKS,
        BatchMeta,
        DataSplits,
        Encoder,
        EncoderOutput,
        EvalContext,
        Evaluator,
        Objective,
        ObjectiveOutput,
        Padded,
        Routine,
        Transform,
        ViewMaker,
    )
    from selfsup.report import build_report
    from selfsup.resolve import resolve_experiment
    from selfsup.reuse import InputSpec, load_encoder
    from selfsup.runtime import Runtime, to_device
    from selfsup.training import MiniBatch, NonFiniteLossError, RunContext, train_epochs

__version__ = "0.2.0"

#: Lazily loaded public names -> the module that defines them.
_LAZY: dict[str, str] = {
    **{
        name: "selfsup.interfaces"
        for name in (
            "TASKS",
            "BatchMeta",
            "DataSplits",
            "Encoder",
            "EncoderOutput",
            "EvalContext",
            "Evaluator",
            "Objective",
            "ObjectiveOutput",
            "Padded",
            "Routine",
            "Transform",
            "ViewMaker",
        )
    },
    "Runtime": "selfsup.runtime",
    "to_device": "selfsup.runtime",
    "RunContext": "selfsup.training",
    "MiniBatch": "selfsup.training",
    "NonFiniteLossError": "selfsup.training",
    "train_epochs": "selfsup.training",
    "build_component": "selfsup.components",
    "get_component": "selfsup.components",
    "list_components": "selfsup.components",
    "ConfigError": "selfsup.config",
    "load_config": "selfsup.config",
    "load_config_text": "selfsup.config",
    "run_experiment": "selfsup.engine.runner",
    "resolve_experiment": "selfsup.resolve",
    "load_encoder": "selfsup.reuse",
    "InputSpec": "selfsup.reuse",
    "export_encoder": "selfsup.export",
    "build_report": "selfsup.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'selfsup' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "TASKS",
    "BatchMeta",
    "ComponentSpec",
    "ConfigError",
    "DataSplits",
    "DatasetSpec",
    "Encoder",
    "EncoderOutput",
    "EncoderSpec",
    "EvalContext",
    "Evaluator",
    "EvaluatorSpec",
    "InputSpec",
    "KindSpec",
    "MiniBatch",
    "NonFiniteLossError",
    "Objective",
    "ObjectiveOutput",
    "ObjectiveSpec",
    "Padded",
    "Ref",
    "Routine",
    "RoutineSpec",
    "RunContext",
    "Runtime",
    "Transform",
    "TransformSpec",
    "ViewMaker",
    "ViewSpec",
    "__version__",
    "build_component",
    "build_report",
    "export_encoder",
    "get_component",
    "hookimpl",
    "hookspec",
    "list_components",
    "load_config",
    "load_config_text",
    "load_encoder",
    "resolve_experiment",
    "run_experiment",
    "to_device",
    "train_epochs",
]
