"""Frozen spec records that plugins hand to the ``register`` callback of a hook.

A spec describes a component without building it: ``build`` is either a callable or a
lazy ``"package.module:attribute"`` reference that is imported only when the component
is built or described. Listing plugins and components therefore never imports
torch-heavy stacks such as timm, torch-geometric or MONAI.

Example:
    >>> from selfsup.specs import EncoderSpec
    >>> spec = EncoderSpec(
    ...     name="gin", modality="graph", build="selfsup_graph.encoders:GIN",
    ...     description="Graph Isomorphism Network encoder.",
    ... )
    >>> spec.kind
    'encoder'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "KINDS",
    "ComponentSpec",
    "DatasetSpec",
    "EncoderSpec",
    "EvaluatorSpec",
    "ObjectiveSpec",
    "RoutineSpec",
    "ViewSpec",
]


@dataclass(frozen=True)
class ComponentSpec:
    """A registrable component: a name, a lazy factory and a description.

    Attributes:
        name: Short name, unique within its plugin and kind (``"gin"``). The full id
            is ``"<plugin>:<name>"``; the plugin part is filled in at registration.
        build: The factory, called with the component's parameters from the config.
            Either a callable or a ``"module:attribute"`` string imported lazily.
        description: One line shown by ``selfsup list``.
        modality: ``"image"``, ``"audio"``, ``"graph"``, ``"volume"``, or ``"any"``.
        tags: Free-form labels (``("contrastive",)``) used for filtering and docs.
        plugin: The owning plugin's name; set by the registry, leave empty.
    """

    kind: ClassVar[str] = "component"

    name: str
    build: Callable[..., Any] | str
    description: str = ""
    modality: str = "any"
    tags: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def id(self) -> str:
        """The full id, ``"<plugin>:<name>"``."""
        return f"{self.plugin}:{self.name}"

    def load(self) -> Callable[..., Any]:
        """Return the factory, importing it first if ``build`` is a lazy reference.

        Raises:
            ImportError: The referenced module or attribute does not exist; the
                message names the spec's id and the reference.
        """
        if callable(self.build):
            return self.build
        module_name, _, attr = self.build.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ImportError(
                f"{self.kind} {self.id!r}: cannot load its factory {self.build!r}: {exc}"
            ) from exc
        return obj

    def create(self, **params: Any) -> Any:
        """Build the component with ``params`` (keyword arguments of the factory)."""
        return self.load()(**params)

    def parameters(self) -> Mapping[str, inspect.Parameter]:
        """The factory's keyword parameters (imports a lazy factory)."""
        factory = self.load()
        target = factory.__init__ if inspect.isclass(factory) else factory
        sig = inspect.signature(target)
        return {
            n: p
            for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def doc(self) -> str:
        """The factory's docstring, or the description if it has none."""
        return inspect.getdoc(self.load()) or self.description


@dataclass(frozen=True)
class EncoderSpec(ComponentSpec):
    """An encoder: ``build(**params) -> Encoder`` (an ``nn.Module``)."""

    kind: ClassVar[str] = "encoder"


@dataclass(frozen=True)
class ObjectiveSpec(ComponentSpec):
    """An objective: ``build(embed_dim=..., **params) -> Objective``.

    The engine passes the encoder's ``embed_dim`` so that projectors and heads can be
    sized without building the encoder twice.
    """

    kind: ClassVar[str] = "objective"


@dataclass(frozen=True)
class EvaluatorSpec(ComponentSpec):
    """An evaluator: ``build(**params) -> Evaluator``."""

    kind: ClassVar[str] = "evaluator"


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A dataset: ``build(**params) -> DataSplits``."""

    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True)
class ViewSpec(ComponentSpec):
    """A view maker: ``build(**params) -> ViewMaker``."""

    kind: ClassVar[str] = "views"


@dataclass(frozen=True)
class RoutineSpec(ComponentSpec):
    """A training routine: ``build(**params) -> Routine``."""

    kind: ClassVar[str] = "routine"


#: The kinds of component, as used by ``selfsup list <kind>`` and config sections.
KINDS: dict[str, type[ComponentSpec]] = {
    "encoder": EncoderSpec,
    "objective": ObjectiveSpec,
    "evaluator": EvaluatorSpec,
    "dataset": DatasetSpec,
    "views": ViewSpec,
    "routine": RoutineSpec,
}
