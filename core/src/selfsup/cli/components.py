"""``selfsup list`` and ``selfsup describe``: what the installed plugins provide.

``list`` reads the specs only (no factory is imported); ``describe`` imports one
factory to show its parameters and documentation. The kinds are those the registry
knows: the core's and every kind an active plugin opened (``register_kinds``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from selfsup.cli._common import State, echo_json, plain
from selfsup.registry import Registry, UnknownIdError
from selfsup.specs import ComponentSpec

__all__ = [
    "describe_command",
    "kind_rows",
    "list_command",
    "normalise_kind",
    "spec_parameters",
]

_ALIASES = {"data": "dataset", "view": "views", "datasets": "dataset"}
#: ``selfsup list kinds`` / ``selfsup list all``: not kinds, so no kind may take them.
_KINDS_WORD, _ALL_WORD = "kinds", "all"
_BASE_FIELDS = {f.name for f in dataclasses.fields(ComponentSpec)}


def normalise_kind(kind: str, known: Collection[str]) -> str:
    """Map ``encoders``/``view``/``data``/``triggers`` and friends to a known kind.

    Args:
        kind: What the user typed.
        known: The kinds the registry knows (core and opened by plugins).

    Raises:
        click.BadParameter: Not a kind; the message has a close match and every kind.
    """
    k = kind.strip().lower()
    if k not in known:
        k = _ALIASES.get(k, k)
    if k not in known and k.endswith("s") and k[:-1] in known:
        k = k[:-1]
    if k not in known:
        close = difflib.get_close_matches(k, list(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise click.BadParameter(
            f"{kind!r} is not a known kind of component.{hint} Known kinds: "
            f"{', '.join(known)} ('selfsup list' describes them). A new kind is opened by "
            "the plugin that defines it: install it, then check 'selfsup plugins'.",
            param_hint="KIND",
        )
    return k


def kind_rows(registry: Registry) -> list[dict[str, Any]]:
    """One plain dict per known kind: name, owning plugin, record type, count, description."""
    return [
        {
            "kind": name,
            "plugin": spec.plugin,
            "record": spec.record.__name__,
            "components": len(registry.list(name)),
            "description": spec.description,
        }
        for name, spec in registry.kinds().items()
    ]


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
@click.option(
    "--markdown",
    is_flag=True,
    help="Print the components page of the first-party plugins (docs/components.md).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="With --markdown: write the page to this file instead of printing it.",
)
@click.pass_obj
def list_command(
    state: State,
    kind: str | None,
    modality: str | None,
    as_json: bool,
    markdown: bool,
    out_file: str | None,
) -> None:
    """List the registered components of one KIND; without KIND, the kinds.

    KIND is a kind of component: the core's (encoder, objective, evaluator, dataset,
    views, routine, transform) or one a plugin opened; plurals work too ('selfsup
    list encoders'). 'selfsup list all' lists every component of every kind.
    'selfsup list --markdown --out docs/components.md' regenerates the components page.
    """
    registry = state.pm.registry
    if markdown:
        from selfsup.cli.catalog import components_markdown, write_markdown

        if out_file:
            state.out.print(f"wrote {write_markdown(state.pm, out_file)}", markup=False)
        else:
            click.echo(components_markdown(state.pm), nl=False)
        return
    if out_file:
        raise click.UsageError("--out goes with --markdown")
    if kind is None or kind.strip().lower() == _KINDS_WORD:
        _list_kinds(state, registry, as_json)
        return
    every = kind.strip().lower() == _ALL_WORD
    kinds = list(registry.kinds()) if every else [normalise_kind(kind, registry.kinds())]
    rows = [_spec_row(s) for k in kinds for s in registry.list(k, modality)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        where = f" of modality {modality!r}" if modality else ""
        what = "component" if every else kinds[0]
        state.out.print(
            f"No {what}{where} is registered; 'selfsup plugins' shows the installed plugins.",
            markup=False,
        )
        return
    table = Table(title_justify="left", title="components" if every else kinds[0])
    if every:
        table.add_column("kind")
    for column in ("id", "modality", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = [row["id"], row["modality"], row["description"]]
        table.add_row(*plain(*([row["kind"], *cells] if every else cells)))
    state.out.print(table)


def _list_kinds(state: State, registry: Registry, as_json: bool) -> None:
    rows = kind_rows(registry)
    if as_json:
        echo_json(rows)
        return
    table = Table(title="kinds of component", title_justify="left")
    for column in ("kind", "plugin", "components", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *plain(row["kind"], row["plugin"], str(row["components"]), row["description"])
        )
    state.out.print(table)
    state.out.print(
        "'selfsup list KIND' lists the components of one kind, 'selfsup list all' every one.",
        markup=False,
    )


def _plain(value: Any) -> Any:
    """A default as JSON-able data (tuples as lists; other objects as their repr)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def spec_parameters(spec: ComponentSpec) -> list[dict[str, Any]]:
    """The factory's parameters as plain dicts for ``describe`` (see ``describe_params``).

    Each row: ``name``, ``annotation`` (type with its constraint, ``float (> 0)``),
    ``default``, ``required``, ``set_by_engine`` and ``component`` (the kind a ``Ref``
    parameter takes, else ``None``).

    Raises:
        ImportError: The factory cannot be imported.
    """
    from selfsup.params import describe_params, factory_params
    from selfsup.resolve import ENGINE_PARAMS

    defaults = {n: p.default for n, p in factory_params(spec).params.items()}
    rows = []
    for row in describe_params(spec, ENGINE_PARAMS.get(spec.kind, ())):
        annotation = row["type"] or ""
        if row["constraint"]:
            annotation = f"{annotation} ({row['constraint']})".strip()
        if row["ref"]:
            annotation = f"{'ids' if row['many'] else 'id'} of a {row['ref']}"
        rows.append(
            {
                "name": row["name"],
                "annotation": annotation,
                "default": None if row["required"] else _plain(defaults[row["name"]]),
                "required": row["required"] and not row["engine"],
                "set_by_engine": row["engine"],
                "component": row["ref"],
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
    message += " 'selfsup list all' shows every id."
    raise UnknownIdError(explain_unknown(state.pm, component_id, message))


@click.command(name="describe")
@click.argument("component_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def describe_command(state: State, component_id: str, as_json: bool) -> None:
    """Show a component: kind, plugin, modality, parameters and documentation.

    ID is 'plugin:name', for example 'core:simclr'. Imports the component's factory
    (not the others). Fields that the component's kind adds to its record (an
    evaluator's 'ranks') are shown too.
    """
    specs = _lookup(state, component_id)
    records = []
    for spec in specs:
        record = _spec_row(spec)
        record["fields"] = _extra_fields(spec)
        record["factory"] = spec.build if isinstance(spec.build, str) else repr(spec.build)
        record["parameters"] = spec_parameters(spec)  # ImportError: rendered by the group
        record["doc"] = spec.doc()
        records.append(record)
    if as_json:
        echo_json(records if len(records) > 1 else records[0])
        return
    for record in records:
        _print_record(state, record)


def _extra_fields(spec: ComponentSpec) -> dict[str, Any]:
    """The record's fields beyond :class:`ComponentSpec` (``ranks`` of an evaluator)."""
    return {
        f.name: getattr(spec, f.name)
        for f in dataclasses.fields(spec)
        if f.name not in _BASE_FIELDS and f.repr
    }


def _print_record(state: State, record: dict[str, Any]) -> None:
    out = state.out
    title = Text(record["id"], style="bold")
    title.append(f"  ({record['kind']}, plugin {record['plugin']}, modality {record['modality']})")
    out.print(title)
    if record["description"]:
        out.print(Text(record["description"]))
    if record["tags"]:
        out.print(Text(f"tags: {', '.join(record['tags'])}"))
    for name, value in record["fields"].items():
        out.print(Text(f"{name}: {value}"))
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
