"""Is a decoded JSON value safe to store in PostgreSQL and to send back as strict JSON? Pure Python, no Django.

PostgreSQL refuses NaN and Infinity inside `jsonb`, a NUL character in any text, and an unpaired UTF-16 surrogate
(which cannot be encoded as UTF-8); an integer past 64 bits overflows a `bigint` and, past about 1e308, even the
conversion to float. Finding them before a write turns what would be a database error (a 500, or a plan left
"running") into an answer that names the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 32  # the deepest document the API accepts is a result.json: result > levels > [i] > samples > [j]
MAX_ABS_INT = 2**63 - 1  # PostgreSQL's bigint
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class JsonProblem:
    path: (
        str  # "traffic.hourly_requests_per_s[3]", as advisor.api.flatten_errors names fields; "" is the root
    )
    message: str
    code: str


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def unstorable_character(text: str) -> str | None:
    """What in `text` cannot be stored, said for a person; None when nothing."""
    found = _UNSTORABLE_CHARACTERS.search(text)
    if found is None:
        return None
    what = "a NUL character" if found.group() == "\x00" else "an unpaired UTF-16 surrogate"
    return f"{what} at position {found.start()}"


def json_problem(
    value: Any, *, max_depth: int = MAX_DEPTH, max_abs_int: int = MAX_ABS_INT
) -> JsonProblem | None:
    """The first problem in document order, or None. Iterative, so no document depth can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= max_depth:
                return JsonProblem(path, f"Nested deeper than {max_depth} levels.", "too_deep")
            items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            children: list[tuple[Any, str, int]] = []
            for key, child in items:
                if isinstance(key, str) and (bad := unstorable_character(key)):
                    return JsonProblem(path, f"A key contains {bad}; text cannot hold it.", "bad_text")
                children.append((child, join_path(path, key), depth + 1))
            stack.extend(reversed(children))
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                return JsonProblem(path, f"Must be a finite number (got {node}).", "not_finite")
        elif isinstance(node, int):
            if abs(node) > max_abs_int:
                return JsonProblem(
                    path, f"Integer out of range: at most {max_abs_int} in magnitude.", "out_of_range"
                )
        elif isinstance(node, str) and (bad := unstorable_character(node)):
            return JsonProblem(path, f"Contains {bad}; text cannot hold it.", "bad_text")
    return None
