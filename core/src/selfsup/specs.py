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
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "KINDS",
    "ComponentSpec",
    "DatasetSpec",
    "EncoderSpec",
    "EvaluatorSpec",
    "KindSpec",
    "ObjectiveSpec",
    "PluginBugError",
    "Ref",
    "RoutineSpec",
    "TransformSpec",
    "ViewSpec",
]


class PluginBugError(ImportError):
    """A spec's lazy ``build`` reference names nothing: a bug in its plugin.

    Raised instead of a plain :class:`ImportError` ("missing dependency") when the
    reference's own package imports but the module or attribute it names does not
    exist; report it to the plugin's authors. A module of another package that is
    missing (``torch_geometric``) stays an :class:`ImportError`: install it.
    """


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
        kind: The kind of component (keyword only). Each record type fixes its own
            (``EncoderSpec`` is ``"encoder"``); a plain ``ComponentSpec(kind="trigger",
            ...)`` contributes to a kind that another plugin opened (see
            :class:`KindSpec`) without importing that plugin.
    """

    name: str
    build: Callable[..., Any] | str
    description: str = ""
    modality: str = "any"
    tags: tuple[str, ...] = ()
    plugin: str = ""
    kind: str = field(default="component", kw_only=True)

    @property
    def id(self) -> str:
        """The full id, ``"<plugin>:<name>"``."""
        return f"{self.plugin}:{self.name}"

    def load(self) -> Callable[..., Any]:
        """Return the factory, importing it first if ``build`` is a lazy reference.

        Raises:
            PluginBugError: The reference is wrong (its package imports, but the
                module or attribute does not exist): a bug in the plugin.
            ImportError: A module the factory needs is missing (a dependency); the
                message names the spec's id and the reference.
        """
        if callable(self.build):
            return self.build
        module_name, _, attr = self.build.partition(":")
        if not module_name or not attr:
            raise self._bug("it is not of the form 'package.module:attribute'")
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing, top = exc.name or "", module_name.partition(".")[0]
            if missing != top and missing.partition(".")[0] == top:
                raise self._bug(f"no module named {missing!r}") from exc
            raise self._cannot_load(exc) from exc
        except (ImportError, AttributeError) as exc:
            raise self._cannot_load(exc) from exc
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise self._bug(f"module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        return obj

    def _cannot_load(self, exc: BaseException) -> ImportError:
        return ImportError(
            f"{self.kind} {self.id!r}: cannot load its factory {self.build!r}: {exc}"
        )

    def _bug(self, why: str) -> PluginBugError:
        from importlib import metadata

        # the plugin's distribution (its entry point), else the one of the build's package
        dists = [ep.dist for ep in metadata.entry_points(group="selfsup", name=self.plugin)]
        names = [(d.metadata["Name"], d.version) for d in dists if d is not None]
        if not names:
            package = str(self.build).partition(".")[0].partition(":")[0]
            for name in metadata.packages_distributions().get(package, [])[:1]:
                names.append((name, metadata.version(name)))
        where = f" ({names[0][0]} {names[0][1]})" if names else ""
        return PluginBugError(
            f"plugin {self.plugin!r} registers {self.kind} {self.id!r} with build "
            f"{self.build!r}, which does not exist ({why}): a bug in plugin "
            f"{self.plugin!r}{where}; report it to its authors"
        )

    def create(self, **params: Any) -> Any:
        """Build the component with ``params`` (keyword arguments of the factory)."""
        return self.load()(**params)

    def parameters(self) -> Mapping[str, inspect.Parameter]:
        """The factory's keyword parameters (imports a lazy factory)."""
        from selfsup.params import factory_params

        sig = inspect.signature(self.load())  # a class: its __init__ without self
        return {n: sig.parameters[n] for n in factory_params(self).params}

    def refs(self) -> dict[str, Ref]:
        """The factory's parameters that take components (annotated with :class:`Ref`).

        Read from the same parameter table that ``selfsup check`` validates against,
        so what check resolves is exactly what the engine builds.
        """
        from selfsup.params import factory_params

        return {n: p.ref for n, p in factory_params(self).params.items() if p.ref is not None}

    def doc(self) -> str:
        """The factory's docstring, or the description if it has none."""
        return inspect.getdoc(self.load()) or self.description


@dataclass(frozen=True)
class EncoderSpec(ComponentSpec):
    """An encoder: ``build(**params) -> Encoder`` (an ``nn.Module``)."""

    kind: str = field(default="encoder", kw_only=True)


@dataclass(frozen=True)
class ObjectiveSpec(ComponentSpec):
    """An objective: ``build(embed_dim=..., **params) -> Objective``.

    The engine passes the encoder's ``embed_dim`` so that projectors and heads can be
    sized without building the encoder twice.
    """

    kind: str = field(default="objective", kw_only=True)


@dataclass(frozen=True)
class EvaluatorSpec(ComponentSpec):
    """An evaluator: ``build(**params) -> Evaluator``.

    Attributes:
        ranks: ``"main"`` (the default): only rank 0 evaluates under ``torchrun`` and
            the others wait; ``"all"``: every rank calls ``evaluate`` (sharded work
            such as sliding-window inference; use ``ctx.rank`` / ``ctx.world_size``
            and return the same metrics on every rank).
    """

    kind: str = field(default="evaluator", kw_only=True)
    ranks: Literal["main", "all"] = field(default="main", kw_only=True)


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A dataset: ``build(**params) -> DataSplits``."""

    kind: str = field(default="dataset", kw_only=True)


@dataclass(frozen=True)
class ViewSpec(ComponentSpec):
    """A view maker: ``build(**params) -> ViewMaker``."""

    kind: str = field(default="views", kw_only=True)


@dataclass(frozen=True)
class RoutineSpec(ComponentSpec):
    """A training routine: ``build(**params) -> Routine``."""

    kind: str = field(default="routine", kw_only=True)


@dataclass(frozen=True)
class TransformSpec(ComponentSpec):
    """A data transform: ``build(**params) -> Transform``, ``(DataSplits, seed) -> DataSplits``.

    Listed in a config under ``data.transforms``; applied after loading and before
    views (poisoning, label noise, subsampling).
    """

    kind: str = field(default="transform", kw_only=True)


@dataclass(frozen=True)
class KindSpec:
    """A new kind of component that a plugin opens (``register_kinds``).

    Once a kind is registered, any plugin contributes components of it through
    ``register_components`` (with ``ComponentSpec(kind=name, ...)`` or the opening
    plugin's own record type), and ``selfsup list``, ``describe`` and ``check`` know
    them. Components of a new kind are used as parameters of other components,
    declared with :class:`Ref` (a poisoning transform's ``trigger``, an evaluator's
    ``attack``).

    Attributes:
        name: The kind (``"trigger"``): lower case, unique.
        description: One line shown by ``selfsup list``.
        record: The spec record type of this kind (a :class:`ComponentSpec` subclass
            whose fields beyond the base have defaults); contributions given as a plain
            ``ComponentSpec`` are converted to it.
        plugin: The opening plugin; set by the registry, leave empty.

    Example:
        >>> KindSpec(name="trigger", description="Backdoor triggers, per modality.").name
        'trigger'
    """

    name: str
    description: str = ""
    record: type[ComponentSpec] = ComponentSpec
    plugin: str = ""


@dataclass(frozen=True)
class Ref:
    """Marks a factory parameter as a component of some kind, built by the engine.

    Written in a signature with :data:`typing.Annotated`; the config then gives an id
    (or ``{id, params}``; a list of them with ``many=True``), ``selfsup check``
    resolves it and checks its parameters, and the engine passes the built component.

    Example:
        >>> from typing import Annotated, Any
        >>> def poison(trigger: Annotated[Any, Ref("trigger")], rate: float = 0.01): ...
    """

    kind: str
    many: bool = False


#: The core's kinds of component, as used by ``selfsup list <kind>`` and config
#: sections; plugins add more through ``register_kinds``.
KINDS: dict[str, type[ComponentSpec]] = {
    "encoder": EncoderSpec,
    "objective": ObjectiveSpec,
    "evaluator": EvaluatorSpec,
    "dataset": DatasetSpec,
    "views": ViewSpec,
    "routine": RoutineSpec,
    "transform": TransformSpec,
}
