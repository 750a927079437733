"""``selfsup list`` and ``selfsup describe``: what the installed plugins provide.

``list`` reads the specs only (no factory is imported); ``describe`` imports one
factory to show its parameters and documentation.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from selfsup.cli._common import State, echo_json, plain
from selfsup.registry import UnknownIdError
from selfsup.specs import KINDS, ComponentSpec

__all__ = ["describe_command", "list_command", "normalise_kind", "spec_parameters"]

_ALIASES = {"data": "dataset", "view": "views", "datasets": "dataset"}


def normalise_kind(kind: str) -> str:
    """Map ``encoders``/``view``/``data`` and friends to a key of :data:`KINDS`.

    Raises:
        click.BadParameter: Not a kind; the message lists the kinds.
    """
    k = kind.strip().lower()
    k = _ALIASES.get(k, k)
    if k not in KINDS and k.endswith("s") and k[:-1] in KINDS:
        k = k[:-1]
    if k not in KINDS:
        close = difflib.get_close_matches(k, list(KINDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise click.BadParameter(
            f"{kind!r} is not a kind of component.{hint} Choose one of: {', '.join(KINDS)}",
            param_hint="KIND",
        )
    return k


def _spec_row(spec: ComponentSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "kind": spec.kind,
        "plugin": spec.plugin,
        "modality": spec.modality,
        "description": spec.description,
        "tags": list(spec.tags),
    }


@click.command(name="list")
@click.argument("kind", required=False)
@click.option("--modality", "-m", help="Only components of this modality (and 'any').")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_command(state: State, kind: str | None, modality: str | None, as_json: bool) -> None:
    """List registered components of one KIND (every kind if omitted).

    KIND is one of encoder, objective, evaluator, dataset, views, routine (plurals
    work too: 'selfsup list encoders').
    """
    kinds = [normalise_kind(kind)] if kind else list(KINDS)
    registry = state.pm.registry
    rows = [_spec_row(s) for k in kinds for s in registry.list(k, modality)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        where = f" of modality {modality!r}" if modality else ""
        what = kinds[0] if kind else "component"
        state.out.print(
            f"No {what}{where} is registered; 'selfsup plugins' shows the installed plugins.",
            markup=False,
        )
        return
    table = Table(title_justify="left", title=f"{kinds[0] if kind else 'components'}")
    if not kind:
        table.add_column("kind")
    for column in ("id", "modality", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = [row["id"], row["modality"], row["description"]]
        table.add_row(*plain(*([row["kind"], *cells] if not kind else cells)))
    state.out.print(table)


def _annotation(param: inspect.Parameter) -> str:
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        return ""
    if isinstance(ann, str):
        return ann
    if typing.get_origin(ann) is None and hasattr(ann, "__name__"):
        return str(ann.__name__)
    return str(ann).replace("typing.", "").replace("collections.abc.", "")


def spec_parameters(spec: ComponentSpec) -> list[dict[str, Any]]:
    """The factory's parameters as plain dicts: name, annotation, default, required.

    Raises:
        ImportError: The factory cannot be imported.
    """
    engine = {"embed_dim"} if spec.kind == "objective" else set()
    rows = []
    for name, param in spec.parameters().items():
        required = param.default is inspect.Parameter.empty
        rows.append(
            {
                "name": name,
                "annotation": _annotation(param),
                "default": None if required else param.default,
                "required": required and name not in engine,
                "set_by_engine": name in engine,
            }
        )
    return rows


def _lookup(state: State, component_id: str) -> list[ComponentSpec]:
    registry = state.pm.registry
    specs = registry.find(component_id)
    if specs:
        return specs
    from selfsup.resolve import explain_unknown

    every = sorted({s.id for s in registry.all()})
    close = difflib.get_close_matches(component_id, every, n=3, cutoff=0.6)
    if not close and ":" not in component_id:
        close = [i for i in every if i.partition(":")[2] == component_id]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    message = f"no component has the id {component_id!r}.{hint}"
    plugin = component_id.partition(":")[0] if ":" in component_id else ""
    if plugin and plugin not in registry.plugins:
        from selfsup.registry import install_hint

        message += f" No loaded plugin provides '{plugin}:' ids: {install_hint(plugin)}."
    message += " 'selfsup list' shows every id."
    raise UnknownIdError(explain_unknown(state.pm, component_id, message))


@click.command(name="describe")
@click.argument("component_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def describe_command(state: State, component_id: str, as_json: bool) -> None:
    """Show a component: kind, plugin, modality, parameters and documentation.

    ID is 'plugin:name', for example 'core:simclr'. Imports the component's factory
    (not the others).
    """
    specs = _lookup(state, component_id)
    records = []
    for spec in specs:
        record = _spec_row(spec)
        record["factory"] = spec.build if isinstance(spec.build, str) else repr(spec.build)
        record["parameters"] = spec_parameters(spec)  # ImportError: rendered by the group
        record["doc"] = spec.doc()
        records.append(record)
    if as_json:
        echo_json(records if len(records) > 1 else records[0])
        return
    for record in records:
        _print_record(state, record)


def _print_record(state: State, record: dict[str, Any]) -> None:
    out = state.out
    title = Text(record["id"], style="bold")
    title.append(f"  ({record['kind']}, plugin {record['plugin']}, modality {record['modality']})")
    out.print(title)
    if record["description"]:
        out.print(Text(record["description"]))
    if record["tags"]:
        out.print(Text(f"tags: {', '.join(record['tags'])}"))
    out.print(Text(f"factory: {record['factory']}", style="dim"))
    if record["parameters"]:
        table = Table(title="parameters (set them under 'params:')", title_justify="left")
        for column in ("name", "type", "default"):
            table.add_column(column, overflow="fold")
        for p in record["parameters"]:
            if p["set_by_engine"]:
                default = "(set by the engine)"
            elif p["required"]:
                default = "(required)"
            else:
                default = repr(p["default"])
            table.add_row(*plain(p["name"], p["annotation"], default))
        out.print(table)
    else:
        out.print("parameters: none")
    if record["doc"]:
        out.print()
        out.print(Text(record["doc"]), soft_wrap=True)
    out.print()
