"""Tables that fit the terminal: columns split over several tables instead of squeezed.

rich squeezes a table wider than the console by cutting every header and cell; a
comparison of many arms at 80 columns then shows none of them whole. :func:`fitted`
keeps the first column (the row labels) and splits the others into as many tables
as needed, each as wide as its content and no wider than ``width``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["fitted"]

#: Characters a column adds besides its content (padding and border).
_COLUMN_OVERHEAD = 3


def _cell_len(cell: Any) -> int:
    if isinstance(cell, Text):
        return max((len(line) for line in cell.plain.splitlines()), default=0)
    text = Text.from_markup(cell) if isinstance(cell, str) else Text(str(cell))
    return max((len(line) for line in text.plain.splitlines()), default=0)


def fitted(
    title: str,
    label: str,
    labels: Sequence[Any],
    columns: Sequence[tuple[str, Sequence[Any]]],
    width: int | None,
    justify: str = "right",
) -> Any:
    """A table (or a group of tables): ``labels`` first, then ``columns``, fitting ``width``.

    Args:
        title: The title (``(i/n)`` added when split).
        label: The header of the label column.
        labels: The row labels.
        columns: ``(header, cells)`` per column, ``len(cells) == len(labels)``.
        width: The console width (``None``: one table, as rich lays it out).
        justify: How the value columns are justified.
    """
    first = max([_cell_len(label), *(_cell_len(v) for v in labels)]) + _COLUMN_OVERHEAD + 1
    sizes = [
        max([_cell_len(h), *(_cell_len(c) for c in cells)]) + _COLUMN_OVERHEAD
        for h, cells in columns
    ]
    groups: list[list[int]] = [[]]
    used = first
    for index, size in enumerate(sizes):
        if width is not None and groups[-1] and used + size > width:
            groups.append([])
            used = first
        groups[-1].append(index)
        used += size
    tables = []
    for number, group in enumerate(groups, 1):
        shown = title if len(groups) == 1 else f"{title} ({number}/{len(groups)})"
        table = Table(title=shown, title_justify="left")
        table.add_column(label, style="bold", no_wrap=True)
        for index in group:
            table.add_column(columns[index][0], justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for row, name in enumerate(labels):
            table.add_row(name, *(columns[index][1][row] for index in group))
        tables.append(table)
    return tables[0] if len(tables) == 1 else Group(*tables)
