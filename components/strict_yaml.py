"""YAML for hand-edited files: PyYAML's safe loader (libyaml's parser when PyYAML has it) that refuses a
repeated mapping key and remembers the line of every key and list item, so errors can name `file:line`.

Plain YAML keeps the last of two equal keys without a word: a manifest edited by hand could lose a
secret's path or a service list that way.
"""

from collections.abc import Hashable, Iterator
from typing import Any

import yaml

try:  # libyaml's parser: ~10x faster than the pure-Python one on manifests with thousands of secrets
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_MERGE = "tag:yaml.org,2002:merge"


class Mapping(dict[Any, Any]):
    """A loaded YAML mapping that knows the (1-based) line of each of its keys."""

    line: int = 0
    key_lines: dict[Any, int]


class Sequence(list[Any]):
    """A loaded YAML list that knows the (1-based) line of each of its items."""

    line: int = 0
    item_lines: list[int]


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key on line {line} (first on line {first})")
        self.key, self.line, self.first = key, line, first


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class StrictLoader(_BaseLoader):
    """Safe loader: no arbitrary objects, no duplicate keys, lines kept on mappings and lists."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *anchor` then an explicit key is YAML's override, not a repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it with its line
                continue
            if first is not None:
                raise DuplicateKeyError(key, _line(key_node), first)
            seen[key] = _line(key_node)
        return super().construct_mapping(node, deep)


def _construct_map(loader: StrictLoader, node: yaml.MappingNode) -> Iterator[Mapping]:
    data = Mapping()
    data.line, data.key_lines = _line(node), {}
    yield data
    data.update(loader.construct_mapping(node))
    # after construct_mapping the node is flattened: merged keys first, explicit ones (which win) after
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            data.key_lines[key] = _line(key_node)


def _construct_seq(loader: StrictLoader, node: yaml.SequenceNode) -> Iterator[Sequence]:
    data = Sequence()
    data.line, data.item_lines = _line(node), [_line(item) for item in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)  # type: ignore[arg-type]
StrictLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)  # type: ignore[arg-type]


def load(text: str) -> Any:
    """Parse `text`; yaml.YAMLError (DuplicateKeyError for a repeated key) on bad input."""
    return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: plain data only


def key_line(mapping: object, key: object, default: int | None) -> int | None:
    """The line of `key` in a loaded mapping; `default` for plain data (no lines) or a missing key."""
    lines = getattr(mapping, "key_lines", None)
    found = lines.get(key) if isinstance(lines, dict) and isinstance(key, Hashable) else None
    return found if found is not None else default


def item_line(sequence: object, index: int, default: int | None) -> int | None:
    """The line of item `index` of a loaded list; `default` for plain data."""
    lines = getattr(sequence, "item_lines", None)
    return lines[index] if isinstance(lines, list) and index < len(lines) else default
