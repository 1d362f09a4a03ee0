"""YAML in and out without surprises: no anchors on output, no duplicate keys on input.

Documents are built as Python data and serialised here; nothing is ever spliced into YAML text, so user text
can only ever become a scalar value.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    # Shared dicts (labels reused in selector and template) would otherwise become &id001 anchors.
    def ignore_aliases(self, data: Any) -> bool:
        return True


_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style: str | None = None
    if any(brk in data for brk in _UNICODE_BREAKS):
        # PyYAML folds NEL/LS/PS in plain and single-quoted scalars, so they would read back as spaces;
        # only the double-quoted style escapes them (\N, \L, \P) and round-trips.
        style = '"'
    elif "\n" in data:
        # Multi-line values (an embedded config file) read better as literal blocks; PyYAML falls back to a
        # quoted style by itself whenever a block cannot represent the text exactly.
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(document: Any) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120
    )


def dump_all(documents: Iterable[Any]) -> str:
    return yaml.dump_all(
        list(documents),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=120,
        explicit_start=True,
    )


class DuplicateKeyError(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_StrictLoader))  # a SafeLoader subclass: no arbitrary objects


def load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
