"""The YAML reader of experiment files and ``--set`` values: safe, bounded, strict.

A config is untrusted text. :func:`load_yaml` reads it with :class:`ConfigLoader`, a
subclass of :class:`yaml.SafeLoader` (so no tag ever constructs a Python object) that
also refuses what a careless or hostile file could do to the process:

* **Alias bombs** ("billion laughs"): at most :data:`MAX_ALIASES` alias uses, and the
  document expanded as a tree (every alias counted as a copy of what it names) may hold
  at most :data:`MAX_NODES` nodes; a recursive alias is refused. The check runs on the
  composed node graph, before any value is built, in time linear in the file size.
* **Deep nesting**: at most :data:`MAX_DEPTH` levels (PyYAML composes recursively).
* **Duplicate keys** at any level: refused with the key, both line numbers and the
  key path of the mapping (PyYAML would silently keep the last).
* **Size**: :data:`MAX_CONFIG_CHARS` characters at most (a config holds ids and
  parameters, not data).

It also reads the YAML 1.2 float forms that YAML 1.1 leaves as strings (``1e-3``,
``1E5``, ``-1e+3``, ``2.5e-4``) as floats; ``1.0.0``, ``1e``, ``e5`` and ids are
untouched. Every message that echoes a value goes through :func:`shorten`.

Example:
    >>> load_yaml("{lr: 1e-3, betas: [0.9, .999], version: 1.0.0}")
    {'lr': 0.001, 'betas': [0.9, 0.999], 'version': '1.0.0'}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_ALIASES",
    "MAX_CONFIG_CHARS",
    "MAX_DEPTH",
    "MAX_NODES",
    "ConfigDumper",
    "ConfigError",
    "ConfigLoader",
    "YAMLRefused",
    "dump_yaml",
    "load_yaml",
    "read_config_file",
    "read_yaml",
    "shorten",
    "yaml_message",
]

#: Alias uses (``*name``) allowed in one document; real configs use a handful.
MAX_ALIASES = 1_000
#: Nodes of the document expanded as a tree (aliases counted as copies).
MAX_NODES = 100_000
#: Nesting levels of mappings and lists.
MAX_DEPTH = 64
#: Characters of a config file (256 KiB of ASCII: pure-Python YAML reads it in ~3 s).
MAX_CONFIG_CHARS = 1 << 18
#: Characters of a value echoed in a message before it is cut.
ECHO_LIMIT = 200

_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2 floats without a dot or with an unsigned exponent: 1e-3, 1E5, -1e+3, 2.5e4.
# (YAML 1.1's resolver, kept, already reads 1.5, .5, 2.5e-4, .inf and .nan.)
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")


class ConfigError(ValueError):
    """A configuration problem; the message names the file, key path, value and fix.

    Defined here, the lowest of the config modules, and exported by :mod:`selfsup.config`.
    """


class YAMLRefused(yaml.YAMLError):
    """A document the loader refuses to build (too large, too deep, a duplicate key)."""


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was.

    Example:
        >>> shorten("x" * 500, 5)
        'xxxxx... (500 characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


class ConfigLoader(yaml.SafeLoader):
    """A :class:`yaml.SafeLoader` with limits, duplicate-key refusal and YAML 1.2 floats."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        """Compose one node, counting alias uses and nesting depth."""
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                line = self.peek_event().start_mark.line + 1
                raise YAMLRefused(
                    f"more than {MAX_ALIASES} alias uses (*name), the last at line {line}: "
                    "aliases that expand this much are refused (a YAML alias bomb?); "
                    "write the values out or use fewer anchors"
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YAMLRefused(
                    f"nesting deeper than {MAX_DEPTH} levels at line {line} is refused; "
                    "a config is a few levels of keys and lists"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Node | None:
        """Compose the document, then check its expanded size and its keys."""
        node = super().get_single_node()
        if node is not None:
            self._check_graph(node)
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """Build one value; a tag's own failure (``!!int ''``) becomes a YAML error."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            value = shorten(repr(node.value), 80) if isinstance(node, ScalarNode) else "it"
            raise ConstructorError(
                None, None, f"cannot read {value} as {node.tag}: {exc}", node.start_mark
            ) from None

    def _key(self, node: Node) -> Any:
        """What a mapping key becomes in Python (``1`` and ``1.0`` are one key)."""
        if isinstance(node, ScalarNode):
            try:
                key = ("scalar", self.construct_object(node))
                hash(key)
                return key
            except (yaml.YAMLError, ValueError, TypeError):
                return ("raw", node.tag, node.value)
        return ("node", id(node))  # unhashable keys are refused by the constructor

    def _check_mapping(self, node: MappingNode, path: str) -> None:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            first = seen.setdefault(key, key_node)
            if first is not key_node:
                where = f"in {path!r}" if path else "at the top level"
                shown = shorten(repr(key_node.value), 80)
                raise YAMLRefused(
                    f"duplicate key {shown} {where} (lines {_line(first)} and "
                    f"{_line(key_node)}): YAML would silently keep only the last one; "
                    "remove one of them or merge the two"
                )

    def _too_large(self, node: Node) -> str:
        if not self._aliases:
            return (
                f"the document holds more than {MAX_NODES} values (at line {_line(node)}): "
                "a config holds ids and parameters, not data; point a dataset's params "
                "at a data file"
            )
        return (
            f"the document expands to more than {MAX_NODES} values (at line {_line(node)}): "
            f"aliases expanding to more than {MAX_NODES} nodes are refused (a YAML alias "
            "bomb?); write the values out, or use fewer anchors"
        )

    def _check_graph(self, root: Node) -> None:
        """Expanded size (aliases as copies), recursion and duplicate keys, iteratively."""
        sizes: dict[int, int] = {}
        on_path: set[int] = set()
        stack: list[tuple[Node, bool, str]] = [(root, False, "")]
        while stack:
            node, done, path = stack.pop()
            key = id(node)
            if done:
                on_path.discard(key)
                size = 1 + sum(sizes[id(c)] for c in _children(node))
                if size > MAX_NODES:
                    raise YAMLRefused(self._too_large(node))
                sizes[key] = size
                continue
            if key in sizes:
                continue
            if key in on_path:
                raise YAMLRefused(
                    f"a recursive alias at line {_line(node)}"
                    f"{f' ({path!r})' if path else ''} is refused: "
                    "an anchor cannot contain an alias to itself"
                )
            on_path.add(key)
            stack.append((node, True, path))
            if isinstance(node, MappingNode):
                self._check_mapping(node, path)
                for key_node, value_node in node.value:
                    name = key_node.value if isinstance(key_node, ScalarNode) else "?"
                    stack.append((key_node, False, path))
                    stack.append((value_node, False, f"{path}.{name}" if path else str(name)))
            elif isinstance(node, SequenceNode):
                for i, item in enumerate(node.value):
                    stack.append((item, False, f"{path}[{i}]"))


class ConfigDumper(yaml.SafeDumper):
    """A :class:`yaml.SafeDumper` whose output :class:`ConfigLoader` reads back unchanged.

    It knows the loader's extra float forms, so it quotes a string such as ``"1e-3"``.
    """


for _cls in (ConfigLoader, ConfigDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def dump_yaml(data: Any, flow: bool = False) -> str:
    """``data`` as YAML that :func:`load_yaml` reads back equal (a config, a ``--set`` value).

    Args:
        data: Plain data (mappings, lists, strings, numbers, booleans, ``None``).
        flow: One line in flow style (``{a: [1, 2]}``), as a ``--set`` value is written.

    Example:
        >>> dump_yaml({"lr": 0.001, "note": "1e-3"}, flow=True)
        "{lr: 0.001, note: '1e-3'}"
    """
    text = yaml.dump(
        data,
        Dumper=ConfigDumper,
        sort_keys=False,
        allow_unicode=False,  # escaped: PyYAML folds a raw U+0085 in a quoted scalar
        default_flow_style=flow,
        width=10**9 if flow else 80,
    )
    return text.removesuffix("\n...\n").rstrip("\n") if flow else text


def load_yaml(text: str, name: str = "<config>") -> Any:
    """Parse one YAML document with :class:`ConfigLoader`.

    Args:
        text: The document.
        name: Shown in YAML's own error positions (``in "exp.yaml", line 3``).

    Raises:
        YAMLRefused: Too long, too large once expanded, too deep, or a duplicate key.
        yaml.YAMLError: Not valid YAML (or a tag that is not plain data).
    """
    if len(text) > MAX_CONFIG_CHARS:
        raise YAMLRefused(
            f"{len(text)} characters is more than the {MAX_CONFIG_CHARS} a config may hold; "
            "a config holds ids and parameters: point a dataset's params at a data file"
        )
    loader = ConfigLoader(text)
    loader.name = name
    try:
        return _unshare(loader.get_single_data())
    finally:
        loader.dispose()


def _unshare(value: Any) -> Any:
    """A copy in which no mapping or list appears twice.

    An alias (``*a``) makes YAML return the anchored object itself at every use, so an
    override of one arm built from an anchor (``--set arms.1.train.epochs=7``) would
    change every arm that shares it. The alias limits bound the size of this copy.
    """
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value


def yaml_message(exc: yaml.YAMLError) -> str:
    """PyYAML's message with its lines cut, and the fix for a tab used as indentation."""
    text = "\n".join(shorten(line, 300) for line in str(exc).splitlines()[:12])
    mark = getattr(exc, "problem_mark", None)
    if "'\\t'" in text and mark is not None:
        text += (
            f"\nYAML indents with spaces, never tabs: replace the tabs on line {mark.line + 1} "
            "with spaces"
        )
    return text


def read_yaml(text: str, source: str) -> Any:
    """One YAML document read with :func:`load_yaml`; every failure a :class:`ConfigError`.

    Raises:
        ConfigError: Refused (size, aliases, depth, duplicate key) or not valid YAML;
            the message starts with ``source``.
    """
    try:
        return load_yaml(text, name=source)
    except YAMLRefused as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {yaml_message(exc)}") from None


def read_config_file(path: str | Path) -> str:
    """The text of a config file: a regular file, at most :data:`MAX_CONFIG_CHARS` bytes, UTF-8.

    Raises:
        ConfigError: Missing, a directory, unreadable, too large or not UTF-8 (the
            message names the file, the line of the first bad byte and the fix).
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a config file; name an EXP.yaml file")
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file (see examples/ for ready-made ones)")
    try:
        with p.open("rb") as stream:
            raw = stream.read(MAX_CONFIG_CHARS + 1)  # bounded, even for a growing file
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the file: {exc}") from exc
    if len(raw) > MAX_CONFIG_CHARS:
        raise ConfigError(
            f"{p}: the file has more than {MAX_CONFIG_CHARS} bytes, and a config may hold at "
            "most that: it holds ids and parameters; point a dataset's params at a data file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}: the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line} "
            "cannot be decoded): save it as UTF-8"
        ) from None
    return text
