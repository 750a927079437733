"""Factory parameters: read from the signature, validated with pydantic, described.

A component declares its parameters once, in its factory's signature, with pydantic /
annotated-types constraints::

    def __init__(
        self,
        embed_dim: int,
        temperature: Annotated[float, Field(gt=0)] = 0.5,
        mode: Literal["nt-xent", "dcl"] = "nt-xent",
        trigger: Annotated[Any, Ref("trigger")] = None,
    ) -> None: ...

:func:`factory_params` reads such a signature (string annotations evaluated one by
one, so a name imported only for type checking disables nothing else) and builds one
pydantic ``TypeAdapter`` per parameter, cached per factory. Values from a config are
validated as JSON would be, strictly: ``true`` is not an integer and ``"3"`` is not a
number, while an integer is a fine float and a list a fine tuple. Annotations pydantic
cannot build a schema for (``nn.Module``, protocols, torch types) are accepted as they
are. Parameters annotated with :class:`~selfsup.specs.Ref` take components; the
resolver checks those itself (:func:`selfsup.resolve.check_params`). The marker is
read on the outermost ``Annotated`` only, as the engine reads it: write an optional
component as ``Annotated[T | None, Ref("trigger")] = None``.

Example:
    >>> from typing import Annotated
    >>> from pydantic import Field
    >>> def f(rate: Annotated[float, Field(ge=0, lt=1)] = 0.1): ...
    >>> factory_params(f).params["rate"].problem(1.5)
    'Input should be less than 1 (allowed: float in [0, 1))'
    >>> describe_annotation(factory_params(f).params["rate"].annotation)
    ('float', 'in [0, 1)')
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selfsup.specs import ComponentSpec, Ref

__all__ = [
    "FactoryParams",
    "ParamInfo",
    "annotation_problem",
    "describe_annotation",
    "describe_params",
    "factory_params",
    "find_ref",
]

_EMPTY = inspect.Parameter.empty


def find_ref(annotation: Any) -> Ref | None:
    """The :class:`Ref` marker of an ``Annotated[T, Ref(...)]`` annotation, if any."""
    for extra in getattr(annotation, "__metadata__", ()):
        if isinstance(extra, Ref):
            return extra
    return None


@dataclass(frozen=True)
class ParamInfo:
    """One keyword parameter of a factory.

    Attributes:
        name: The parameter's name.
        annotation: The evaluated annotation (the source string where it could not be
            evaluated; :data:`inspect.Parameter.empty` where there is none).
        default: The default, or :data:`inspect.Parameter.empty` if required.
        ref: The :class:`Ref` marker when the parameter takes a component.
        adapter: The pydantic validator of the annotation; ``None`` when values are
            accepted as they are (no annotation pydantic understands, or a ``Ref``).
    """

    name: str
    annotation: Any
    default: Any
    ref: Ref | None = None
    adapter: Any = field(default=None, compare=False, repr=False)

    @property
    def required(self) -> bool:
        """Whether the config must give this parameter."""
        return self.default is _EMPTY

    def problem(self, value: Any) -> str | None:
        """Pydantic's message and what is allowed when ``value`` is invalid, else ``None``."""
        if self.adapter is None:
            return None
        return _validate(self.adapter, self.annotation, value)


@dataclass(frozen=True)
class FactoryParams:
    """The keyword parameters of a factory and whether it takes ``**kwargs``."""

    params: dict[str, ParamInfo]
    var_kw: bool


def _adapter(annotation: Any) -> Any:
    """A strict pydantic ``TypeAdapter`` of ``annotation``, or ``None`` (accept anything)."""
    if annotation is _EMPTY or annotation is Any or isinstance(annotation, str):
        return None
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(annotation)  # validated with strict=True (see _validate)
    except Exception:  # no schema: nn.Module, a protocol, a torch type, a forward ref
        return None


def _errors(adapter: Any, value: Any) -> list[dict[str, Any]] | None:
    """Pydantic's errors for ``value`` as a config value, or ``None`` if it is valid."""
    from pydantic import ValidationError

    try:
        try:
            text = json.dumps(value, allow_nan=True)
        except (TypeError, ValueError):  # not JSON data (a YAML date): Python mode
            adapter.validate_python(value, strict=True)
        else:
            # JSON mode, strictly: what a YAML value may mean (a list is a tuple, an int
            # a float, a string a path), and no more (a bool is no int, "3" no number)
            adapter.validate_json(text, strict=True)
    except ValidationError as exc:
        return list(exc.errors(include_url=False))
    return None


#: Errors that say "not this type" (rather than "this type, but out of range").
_MISMATCH = ("literal_error", "enum", "none_required", "is_instance_of")


def _mismatch(error: dict[str, Any]) -> bool:
    return error["type"].endswith("_type") or error["type"] in _MISMATCH


def _union_errors(annotation: Any, value: Any) -> list[dict[str, Any]] | None:
    """The errors of the first union member whose type fits ``value`` (``None``: none fits).

    Pydantic reports every member of a union; a user needs the one their value meant
    (``-1`` for ``PositiveInt | None`` is a bad integer, not a bad ``None``).
    """
    for member in typing.get_args(annotation):
        adapter = _adapter(member)
        errors = None if adapter is None else _errors(adapter, value)
        if errors and not all(_mismatch(e) for e in errors):
            return errors
    return None


#: Pydantic's names of union members in an error's location (not config keys).
_TAG_NAMES = frozenset({"int", "float", "str", "bool", "none", "bytes", "any", "list", "dict"})
_TAG_PREFIXES = ("constrained-", "function-", "json-or-python", "lax-or-strict", "nullable")


def _is_tag(part: Any) -> bool:
    return (
        isinstance(part, str)
        and part != "[key]"
        and (part in _TAG_NAMES or "[" in part or part.startswith(_TAG_PREFIXES))
    )


def _collapse_unions(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep, for a union nested in a container, the errors of the member the value meant."""
    out: list[dict[str, Any]] = []
    groups: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        at = next((i for i, part in enumerate(loc) if _is_tag(part)), None)
        if at is None:
            out.append(error)
            continue
        member = {**error, "loc": loc[:at] + loc[at + 1 :]}
        groups.setdefault(loc[:at], {}).setdefault(loc[at], []).append(member)
    for prefix, members in groups.items():
        if len(members) == 1:  # one "member": a config key that looks like a tag
            ((tag, errs),) = members.items()
            out.extend({**e, "loc": (*prefix, tag, *e["loc"][len(prefix) :])} for e in errs)
            continue
        fitting = [e for e in members.values() if not all(_mismatch(x) for x in e)]
        if fitting:
            out.extend(_collapse_unions(fitting[0]))
        else:
            got = _type_name(next(iter(members.values()))[0].get("input"))
            msg = f"Input fits none of the allowed types, got {got}"
            out.append({"loc": prefix, "msg": msg, "type": "union_mismatch"})
    return out


def _validate(adapter: Any, annotation: Any, value: Any) -> str | None:
    errors = _errors(adapter, value)
    if errors is None:
        return None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        errors = _union_errors(annotation, value)
        if errors is None:
            return f"Input should be {allowed(annotation)}, got {_type_name(value)}"
    errors = _collapse_unions(errors)
    messages = []
    for error in errors:
        loc = "".join(
            f"[{p}]" if isinstance(p, int) else " (the key)" if p == "[key]" else f".{p}"
            for p in error["loc"]
        )
        text = error["msg"]
        if error["type"].endswith("_type") and "input" in error:
            text += f", got {_type_name(error['input'])}"
        messages.append(f"{loc}: {text}" if loc else text)
    shown = "; ".join(dict.fromkeys(messages))
    if all(e["type"] in ("literal_error", "enum") for e in errors):
        return shown  # pydantic's message lists the choices
    return f"{shown} (allowed: {allowed(annotation)})"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def annotation_problem(annotation: Any, value: Any) -> str | None:
    """A message if ``value`` (from a config) contradicts ``annotation``, else ``None``.

    Annotations pydantic cannot validate (classes such as ``nn.Module``, unevaluated
    strings) accept any value.

    Example:
        >>> annotation_problem(int, True)
        'Input should be a valid integer, got bool (allowed: int)'
        >>> annotation_problem(tuple[float, float], [1, 2.5]) is None
        True
    """
    if find_ref(annotation) is not None:
        return None
    adapter = _adapter(annotation)
    return None if adapter is None else _validate(adapter, annotation, value)


def _globals_of(factory: Any, target: Any) -> dict[str, Any]:
    namespace = getattr(inspect.unwrap(target), "__globals__", None)
    if isinstance(namespace, dict):
        return namespace
    module = sys.modules.get(getattr(factory, "__module__", "") or "")
    return vars(module) if module is not None else {}


def _evaluate(annotation: Any, namespace: dict[str, Any]) -> Any:
    """Evaluate a postponed (string) annotation; keep the string when it cannot be."""
    if not isinstance(annotation, str):
        return annotation
    try:
        # the factory's own source annotations, as typing.get_type_hints evaluates them
        return eval(annotation, dict(namespace))
    except Exception:  # a name imported only under TYPE_CHECKING, a typo
        return annotation


def _build(factory: Callable[..., Any]) -> FactoryParams:
    # a class's signature without ``self`` (``()`` for a class without ``__init__``,
    # where ``object.__init__`` would claim ``**kwargs``)
    target = factory.__init__ if inspect.isclass(factory) else factory
    signature = inspect.signature(factory)
    namespace = _globals_of(factory, target)
    var_kw = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    params: dict[str, ParamInfo] = {}
    for name, param in signature.parameters.items():
        if name == "self" or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
            param.POSITIONAL_ONLY,
        ):
            continue
        annotation = _evaluate(param.annotation, namespace)
        ref = find_ref(annotation)
        adapter = None if ref is not None else _adapter(annotation)
        params[name] = ParamInfo(name, annotation, param.default, ref, adapter)
    return FactoryParams(params=params, var_kw=var_kw)


_CACHE: dict[Any, FactoryParams] = {}


def factory_params(factory: Callable[..., Any] | ComponentSpec) -> FactoryParams:
    """The keyword parameters of a factory (or a spec's factory), cached per factory.

    Raises:
        ImportError: A spec's lazy factory cannot be imported.
    """
    if isinstance(factory, ComponentSpec):
        factory = factory.load()
    try:
        return _CACHE[factory]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable
        return _build(factory)
    _CACHE[factory] = result = _build(factory)
    return result


# ---------------------------------------------------------------- description


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _flatten(metadata: Any) -> list[Any]:
    """annotated-types constraints out of ``Annotated`` extras (``Field(gt=0)``, ``Interval``)."""
    import annotated_types as at

    out: list[Any] = []
    for item in metadata:
        if isinstance(item, Ref):
            continue
        inner = getattr(item, "metadata", None)  # pydantic's FieldInfo
        if isinstance(inner, list):
            out.extend(_flatten(inner))
        elif isinstance(item, at.GroupedMetadata):
            out.extend(_flatten(list(item)))
        else:
            out.append(item)
    return out


def _constraint_text(metadata: Any) -> str:
    import annotated_types as at

    low = up = ""
    low_v: Any = None
    up_v: Any = None
    rest: list[str] = []
    for item in _flatten(metadata):
        if isinstance(item, at.Gt):
            low, low_v = "(", item.gt
        elif isinstance(item, at.Ge):
            low, low_v = "[", item.ge
        elif isinstance(item, at.Lt):
            up, up_v = ")", item.lt
        elif isinstance(item, at.Le):
            up, up_v = "]", item.le
        elif isinstance(item, at.MinLen):
            rest.append(f"length >= {item.min_length}")
        elif isinstance(item, at.MaxLen):
            rest.append(f"length <= {item.max_length}")
        elif isinstance(item, at.MultipleOf):
            rest.append(f"multiple of {_number(item.multiple_of)}")
        elif type(item).__name__ != "Strict":
            rest.append(str(item))
    if low and up:
        rest.insert(0, f"in {low}{_number(low_v)}, {_number(up_v)}{up}")
    elif low:
        rest.insert(0, f"{'>' if low == '(' else '>='} {_number(low_v)}")
    elif up:
        rest.insert(0, f"{'<' if up == ')' else '<='} {_number(up_v)}")
    return ", ".join(rest)


def _type_text(annotation: Any, nested: bool = False) -> str:
    if annotation is _EMPTY:
        return ""
    if isinstance(annotation, str):
        return annotation
    if annotation is Any:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        ref = find_ref(annotation)
        if ref is not None:
            return f"{'list of ' if ref.many else ''}{ref.kind} id or {{id, params}}"
        base = _type_text(args[0], nested)
        constraint = _constraint_text(annotation.__metadata__) if nested else ""
        return f"{base} ({constraint})" if constraint else base
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(a, nested=True) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin).replace("typing.", ""))
        inner = ", ".join("..." if a is Ellipsis else _type_text(a, True) for a in args)
        return f"{name}[{inner}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe_annotation(annotation: Any) -> tuple[str, str]:
    """``(type, constraint)`` as shown to a user: ``("float", "in [0, 1)")``.

    Constraints of the top-level ``Annotated`` are the second item; constraints nested
    inside a container or a union are written in the type (``"int (> 0) | None"``).
    """
    if typing.get_origin(annotation) is typing.Annotated and find_ref(annotation) is None:
        return _type_text(annotation), _constraint_text(annotation.__metadata__)
    return _type_text(annotation), ""


def allowed(annotation: Any) -> str:
    """What a value of ``annotation`` may be, in one phrase (``"float > 0"``)."""
    kind, constraint = describe_annotation(annotation)
    return f"{kind} {constraint}".strip() if kind else constraint or "anything"


def describe_params(
    spec: ComponentSpec, engine_params: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """One row per factory parameter, for ``selfsup describe``.

    Args:
        spec: The component.
        engine_params: Parameters the engine passes itself (``embed_dim`` of objectives).

    Returns:
        Dicts with ``name``, ``type``, ``default`` (``repr``; ``None`` if required),
        ``required``, ``constraint``, ``ref`` (the kind of a component parameter, or
        ``None``), ``many`` (a list of components) and ``engine`` (set by the engine).

    Raises:
        ImportError: The spec's lazy factory cannot be imported.
    """
    rows = []
    for name, info in factory_params(spec).params.items():
        kind, constraint = describe_annotation(info.annotation)
        rows.append(
            {
                "name": name,
                "type": kind,
                "default": None if info.required else repr(info.default),
                "required": info.required,
                "constraint": constraint,
                "ref": info.ref.kind if info.ref else None,
                "many": bool(info.ref and info.ref.many),
                "engine": name in engine_params,
            }
        )
    return rows
