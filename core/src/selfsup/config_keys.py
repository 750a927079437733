"""``--set`` overrides and the key paths of ``--set`` and ``matrix``.

A key is a dotted path of names (``train.optimizer.lr``); a list entry is indexed by
number, written ``arms.1.name`` or ``arms[1].name``. A value is read as YAML by the
config's own bounded loader (:mod:`selfsup.config_yaml`), so ``--set lr=1e-3`` is a
number and an alias bomb in a value is refused like one in a file. Every problem is a
:class:`~selfsup.config_yaml.ConfigError` naming the ``--set`` item (or matrix key)
and the fix.

Example:
    >>> apply_overrides({"train": {"epochs": 1}}, ["train.epochs=5", "arms=[{name: a}]"])
    {'train': {'epochs': 5}, 'arms': [{'name': 'a'}]}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

import yaml

from selfsup.config_yaml import ConfigError, YAMLRefused, load_yaml, shorten, yaml_message

__all__ = ["apply_overrides", "list_index", "set_path", "split_key"]

_SEGMENT = re.compile(r"([^\[\]]*)((?:\[-?[0-9]+\])*)")
_INDEX = re.compile(r"-?[0-9]+")
_KEY_HELP = (
    "keys are dotted names (train.optimizer.lr=0.01), list entries indexed by number "
    "(arms.1.name=b, or arms[1].name=b)"
)


def split_key(key: str, where: str) -> list[str]:
    """A ``--set`` or matrix key as path segments; ``arms[1].name`` is ``arms.1.name``.

    Example:
        >>> split_key("arms[1].train.epochs", "--set")
        ['arms', '1', 'train', 'epochs']

    Raises:
        ConfigError: An empty segment (``..``, a leading or trailing dot) or brackets
            that do not hold a list index.
    """
    parts: list[str] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ConfigError(
                f"{where}: cannot read the key segment {shorten(repr(segment), 80)}: "
                f"brackets hold a list index, a number; {_KEY_HELP}"
            )
        name, indexes = match.groups()
        if not name.strip():
            raise ConfigError(
                f"{where}: the key {shorten(repr(key), 80)} has an empty segment; {_KEY_HELP}"
            )
        parts.append(name.strip())
        parts.extend(re.findall(r"-?[0-9]+", indexes))
    return parts


def apply_overrides(
    data: dict[str, Any], overrides: Iterable[str], source: str = "--set"
) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML scalars/lists).

    The value is read like the config file (bounded, ``1e-3`` is a number); list
    entries are indexed as ``arms.1.name`` or ``arms[1].name``.

    Raises:
        ConfigError: An override without ``=``, with an empty key segment, into a list
            or mapping the config does not have, or with a value that is not YAML.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        where = f"{source} {shorten(repr(item))}"
        if not sep or not key.strip():
            raise ConfigError(f"{where}: expected key.path=value, e.g. train.epochs=5")
        path = split_key(key.strip(), where)
        try:
            value = load_yaml(raw, name=source) if raw.strip() else ""
        except YAMLRefused as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: cannot parse the value: {yaml_message(exc)}") from None
        set_path(data, path, value, where)
    return data


def _is_index(part: str) -> bool:
    return _INDEX.fullmatch(part) is not None


def list_index(node: list[Any], part: str, parent: list[str], where: str) -> int:
    """``part`` as an index into ``node`` (``arms.1.name``, ``evaluators.0.params.k``).

    Raises:
        ConfigError: ``part`` is not a number, or out of range (the list is empty).
    """
    name = shorten(".".join(parent), 80)
    if not _is_index(part):
        raise ConfigError(f"{where}: {name} is a list; index it with a number ({name}.0...)")
    index = int(part)
    if not node:
        raise ConfigError(f"{where}: {name} is empty, so it has no entry {index}; {no_list(name)}")
    if not -len(node) <= index < len(node):
        raise ConfigError(f"{where}: {name} has {len(node)} entries; index {index} is out of range")
    return index


def no_list(name: str) -> str:
    """How to give the config the list ``name`` before indexing into it."""
    if name == "arms":
        return (
            "add them in the file (arms: [{name: a}, {name: b, objective: core:vicreg}]) "
            "or set the whole list (--set 'arms=[{name: a}, {name: b}]')"
        )
    return f"add it in the file or set the whole list (--set '{name}=[...]')"


def set_path(data: dict[str, Any], path: list[str], value: Any, where: str) -> None:
    """Set ``value`` at ``path`` in ``data`` (in place), creating missing mappings.

    A component written as a bare id becomes ``{id: ...}`` when a path goes into its
    ``id`` or ``params``; list entries are indexed by number.

    Raises:
        ConfigError: A path through a scalar, into a list the config does not have, or
            with a bad list index; ``where`` starts the message.
    """
    node: Any = data
    for i, part in enumerate(path[:-1]):
        key: Any = part
        if isinstance(node, list):
            key = list_index(node, part, path[:i], where)
            nxt = node[key]
        else:
            nxt = node.get(part)
        if isinstance(nxt, str) and path[i + 1] in ("id", "params"):
            nxt = {"id": nxt}
        if nxt is None and _is_index(path[i + 1]):
            name = ".".join(path[: i + 1])
            raise ConfigError(
                f"{where}: the config has no {name}, so {name}.{path[i + 1]} cannot be "
                f"set; {no_list(name)}"
            )
        if nxt is None:
            nxt = {}
        if not isinstance(nxt, dict | list):
            name = shorten(".".join(path[: i + 1]), 80)
            raise ConfigError(f"{where}: {name} is not a mapping")
        node[key] = nxt
        node = nxt
    if isinstance(node, list):
        node[list_index(node, path[-1], path[:-1], where)] = value
    else:
        node[path[-1]] = value
