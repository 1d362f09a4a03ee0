"""Kubernetes-safe names and label values derived from user text.

Workload and model names come from users, so they are never trusted as names: each is reduced to the
characters Kubernetes allows, and a short digest of the raw text is appended whenever that reduction changed
anything, so two different raw names cannot collapse onto the same object name. The raw text goes only into
annotations and values, where any string is legal.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Service names must be RFC 1035 labels (leading letter); using that for every object keeps one rule.
_LABEL_MAX = 63
_NON_NAME = re.compile(r"[^a-z0-9]+")
_NON_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
RFC1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:6]


def _ascii(raw: str) -> str:
    return unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")


def k8s_name(raw: str, *, max_len: int = 40) -> str:
    """An RFC 1035 label of at most `max_len` characters, stable for the same raw text.

    `max_len` stays well under 63 so suffixes (`-model-cache`, `-router`) and the pod name a Deployment
    generates (`<name>-<hash>-<5>`) still fit.
    """
    cleaned = _NON_NAME.sub("-", _ascii(raw).lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"w-{cleaned}".rstrip("-")
    if cleaned == raw and len(cleaned) <= max_len:
        return cleaned
    suffix = _digest(raw)
    head = cleaned[: max_len - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def label_value(raw: str) -> str:
    """A valid label value (63 characters, alphanumeric ends); the digest marks any change."""
    cleaned = _NON_LABEL_VALUE.sub("-", _ascii(raw)).strip("-._")
    if cleaned == raw and len(cleaned) <= _LABEL_MAX:
        return cleaned
    suffix = _digest(raw)
    head = cleaned[: _LABEL_MAX - len(suffix) - 1].strip("-._")
    return f"{head}-{suffix}" if head else suffix


def compose_project_name(raw: str) -> str:
    # Compose project names: lowercase letters, digits, dashes and underscores, starting with a letter/digit.
    return k8s_name(raw)


def one_line(raw: str, *, max_len: int = 200) -> str:
    """User text made safe for a single Markdown line or a comment-free YAML value in prose."""
    flat = " ".join(raw.split())
    flat = flat.replace("`", "'")
    return flat if len(flat) <= max_len else flat[: max_len - 1] + "…"
