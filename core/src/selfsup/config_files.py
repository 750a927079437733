"""Config files that build on each other: ``extends:``, ``${env:VAR}`` and relative paths.

Three things happen to each file, in this order, before ``--set`` overrides and
validation (:func:`selfsup.config.load_config`):

1. ``${env:VAR}`` and ``${env:VAR,default}`` in string values are replaced by the
   environment variable (``${oc.env:VAR}``, OmegaConf's spelling, is read too). A
   value that is only the reference is read as YAML (``epochs: ${env:EPOCHS,2}`` is
   the number 2); inside a longer string it is text. A variable that is not set and
   has no default is an error naming the key and the variable.
2. Relative paths are made absolute against **the folder of the file that writes
   them**, so a config runs the same from any working directory. A path is the value
   of a component parameter named ``path``, ``root``, ``file``, ``dir``, ``folder``,
   ``directory`` or ``filename``, or ending in ``_path``, ``_root``, ``_file``,
   ``_dir``, ``_folder`` or ``_directory`` (in ``data``, ``data.transforms``,
   ``encoder``, ``views``, ``objective``, ``routine``, ``evaluators`` and every arm),
   and ``encoder.init.from``. For older configs written relative to the working
   directory, a path that exists there and not beside the config is kept as it is.
   ``output_dir`` stays relative to the working directory.
3. ``extends: base.yaml`` (or a list of files, merged in order) names files relative
   to this one; the base is loaded the same way, then this file is deep-merged over
   it: mappings merge key by key, lists and plain values replace, and a component
   given with another ``id`` replaces the base's (its parameters belong to another
   factory). A cycle (``a.yaml`` extends ``b.yaml`` extends ``a.yaml``) is an error
   naming the chain.

Example:
    >>> interpolate({"train": {"epochs": "${env:SELFSUP_DOCTEST_EPOCHS,3}"}}, "<doc>")
    {'train': {'epochs': 3}}
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from selfsup.config_yaml import (
    ConfigError,
    YAMLRefused,
    load_yaml,
    read_config_file,
    read_yaml,
    shorten,
)

__all__ = [
    "MAX_EXTENDS_DEPTH",
    "PATH_KEYS",
    "interpolate",
    "is_path_key",
    "merge_configs",
    "parse_config_text",
    "read_config_tree",
    "ref_id",
    "resolve_paths",
]

#: Parameter names whose (relative) values are paths.
PATH_KEYS = ("path", "root", "file", "dir", "folder", "directory", "filename")
_PATH_SUFFIXES = tuple(f"_{k}" for k in ("path", "root", "file", "dir", "folder", "directory"))
#: How many files an ``extends`` chain may hold.
MAX_EXTENDS_DEPTH = 16
_COMPONENT_KEYS = ("data", "encoder", "views", "objective", "routine")
_ENV = re.compile(r"\$\{(?:oc\.)?env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")


def is_path_key(name: str) -> bool:
    """Whether a parameter called ``name`` holds a path (see the module docstring)."""
    return name in PATH_KEYS or name.endswith(_PATH_SUFFIXES)


def _env_value(match: re.Match[str], where: str) -> str:
    name, default = match.group(1), match.group(2)
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ConfigError(
                f"{where}: the environment variable {name} is not set; set it, or give a "
                f"default: ${{env:{name},VALUE}}"
            )
        return default.strip()
    return value


def interpolate(data: Any, source: str, where: str = "") -> Any:
    """``data`` with every ``${env:VAR}`` / ``${env:VAR,default}`` replaced.

    Raises:
        ConfigError: A variable that is not set and has no default (names the key).
    """
    if isinstance(data, Mapping):
        return {
            k: interpolate(v, source, f"{where}.{k}" if where else str(k)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [interpolate(v, source, f"{where}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data
    label = f"{source}: {where or '<top>'}"
    whole = _ENV.fullmatch(data)
    if whole:
        text = _env_value(whole, label)
        try:
            value = load_yaml(text, name=label) if text else ""
        except (YAMLRefused, Exception):
            return text
        return value if isinstance(value, str | int | float | bool) or value is None else text
    return _ENV.sub(lambda m: _env_value(m, label), data)


def _resolve_one(value: Any, folder: Path) -> Any:
    if isinstance(value, list):
        return [_resolve_one(v, folder) for v in value]
    if not isinstance(value, str) or not value or "://" in value or "${" in value:
        return value
    path = Path(value)
    if path.is_absolute() or value.startswith("~"):
        return value
    beside = folder / path
    if not beside.exists() and path.exists():  # written relative to the working directory
        return value
    return os.path.normpath(beside)


def _resolve_component(node: Any, folder: Path) -> Any:
    if not isinstance(node, Mapping):
        return node
    out = dict(node)
    params = out.get("params")
    if isinstance(params, Mapping):
        out["params"] = {
            k: _resolve_one(v, folder) if is_path_key(str(k)) else v for k, v in params.items()
        }
    if isinstance(out.get("transforms"), list):
        out["transforms"] = [_resolve_component(t, folder) for t in out["transforms"]]
    init = out.get("init")
    if isinstance(init, Mapping) and "from" in init:
        out["init"] = {**init, "from": _resolve_one(init["from"], folder)}
    return out


def _resolve_arm(node: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    out = dict(node)
    for key in _COMPONENT_KEYS:
        if key in out:
            out[key] = _resolve_component(out[key], folder)
    if isinstance(out.get("evaluators"), list):
        out["evaluators"] = [_resolve_component(e, folder) for e in out["evaluators"]]
    return out


def resolve_paths(data: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with relative path parameters made absolute against ``folder``."""
    out = _resolve_arm(data, folder)
    if isinstance(out.get("arms"), list):
        out["arms"] = [
            _resolve_arm(a, folder) if isinstance(a, Mapping) else a for a in out["arms"]
        ]
    return out


def ref_id(node: Any) -> Any:
    """The id of a component reference written as a bare id or a mapping (else ``None``)."""
    if isinstance(node, str):
        return node
    return node.get("id") if isinstance(node, Mapping) else None


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` deep-merged over ``base`` (mappings merge; lists and values replace).

    A component (``data``, ``encoder``...) given with another ``id`` than the base's
    replaces it whole; a bare id over a mapping with the same id keeps its parameters.

    Example:
        >>> merge_configs({"train": {"epochs": 1, "batch_size": 8}}, {"train": {"epochs": 5}})
        {'train': {'epochs': 5, 'batch_size': 8}}
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = out.get(key)
        new_id = ref_id(value)
        if key in _COMPONENT_KEYS and new_id is not None and ref_id(old) not in (None, new_id):
            out[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = merge_configs(old, value)
        elif isinstance(value, Mapping) and isinstance(old, str) and key in _COMPONENT_KEYS:
            out[key] = merge_configs({"id": old}, value)
        elif isinstance(value, str) and isinstance(old, Mapping) and key in _COMPONENT_KEYS:
            out[key] = copy.deepcopy(dict(old))  # the same id: keep the base's parameters
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """The top-level mapping of a YAML config's ``text`` read from ``source``.

    Raises:
        ConfigError: Invalid YAML, an empty file, or a top level that is not a mapping.
    """
    data = read_yaml(text, source)
    if data is None:
        raise ConfigError(f"{source}: the file is empty; see examples/ for a starting point")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not a {type(data).__name__}"
        )
    return data


def read_config_tree(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file with its ``extends`` bases merged in, env and paths resolved.

    Raises:
        ConfigError: A missing base (named with the file that extends it), a cycle
            (the chain is shown), a chain deeper than :data:`MAX_EXTENDS_DEPTH`, or
            any problem of the files themselves.
    """
    p = Path(path)
    key = p.resolve()
    if key in _chain:
        shown = " -> ".join(str(c) for c in (*_chain, key))
        raise ConfigError(f"{p}: 'extends' makes a cycle: {shown}; remove one of the links")
    if len(_chain) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"{p}: 'extends' chain deeper than {MAX_EXTENDS_DEPTH} files")
    data = parse_config_text(read_config_file(p), str(p))
    data = resolve_paths(interpolate(data, str(p)), p.parent)
    bases = data.pop("extends", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(
            f"{p}: extends: give a file name or a list of file names (relative to this file), "
            f"got {shorten(repr(bases))}"
        )
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = Path(os.path.expanduser(base))
        base_path = base_path if base_path.is_absolute() else p.parent / base_path
        if not base_path.is_file():
            raise ConfigError(
                f"{p}: extends: {base!r} is not a file (looked for {base_path}); paths in "
                "'extends' are relative to the file that names them"
            )
        merged = merge_configs(merged, read_config_tree(base_path, (*_chain, key)))
    return merge_configs(merged, data)
