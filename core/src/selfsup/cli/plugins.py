"""``selfsup plugins``: installed plugins, their status, hooks and components.

Only the plugins' ``plugin.py`` modules are imported (their factories are lazy
references), so this never imports timm, torch-geometric or other heavy stacks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from selfsup.cli._common import State, echo_json, plain

__all__ = ["plugin_rows", "plugins_command"]

_STATUS_STYLE = {"active": "green", "failed": "bold red", "disabled": "dim"}


def plugin_rows(state: State) -> list[dict[str, Any]]:
    """One plain dict per plugin: name, distribution, version, status, hooks, counts."""
    pm = state.pm
    failed = {i.name for i in pm.failed()}  # builds the registry first
    dormant: dict[str, list[str]] = {}
    for plugin, kind, name, why in pm.dormant():
        dormant.setdefault(plugin, []).append(f"{plugin}:{name} (kind {kind!r}: {why})")
    counts: dict[str, Counter[str]] = {}
    for spec in pm.registry.all():
        counts.setdefault(spec.plugin, Counter())[spec.kind] += 1
    rows = []
    for name, info in sorted(pm.infos.items()):
        rows.append(
            {
                "name": name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "status": "failed" if name in failed else info.status,
                "hooks": list(info.hooks),
                "components": dict(sorted(counts.get(name, Counter()).items())),
                "error": info.error,
                "message": info.one_line_error() if name in failed else "",
                "dormant": dormant.get(name, []),
            }
        )
    return rows


@click.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def plugins_command(state: State, as_json: bool) -> None:
    """List installed plugins: name, distribution, version, status and hooks.

    Failed plugins are shown with their error in one line. SELFSUP_PLUGINS (an
    allow-list), SELFSUP_DISABLE_PLUGINS and SELFSUP_STRICT_PLUGINS=1 control loading.
    """
    rows = plugin_rows(state)
    if as_json:
        echo_json(rows)
        return
    table = Table(title="selfsup plugins", title_justify="left")
    for column in ("name", "distribution", "version", "status", "hooks", "components"):
        table.add_column(column, overflow="fold")
    for row in rows:
        hooks = ", ".join(h.removeprefix("register_") for h in row["hooks"]) or "-"
        comps = ", ".join(f"{n} {k}" for k, n in row["components"].items()) or "-"
        table.add_row(
            *plain(
                row["name"],
                row["distribution"] or row["module"],
                row["version"] or "-",
                Text(row["status"], style=_STATUS_STYLE.get(row["status"], "")),
                hooks,
                comps,
            )
        )
    state.out.print(table)
    for row in rows:
        if row["status"] == "failed":
            line = Text("failed: ", style="bold red")
            line.append(row["message"])
            state.out.print(line, soft_wrap=True)
    waiting = [item for row in rows for item in row["dormant"]]
    if waiting:
        state.out.print(
            f"not active: {len(waiting)} contribution(s) to kinds that no loaded plugin "
            f"opens (install the plugin that opens the kind): {', '.join(waiting)}",
            soft_wrap=True,
            style="dim",
        )
    if not rows:
        state.out.print("No plugins found: is selfsup installed (pip install selfsup)?")
