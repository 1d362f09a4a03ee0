"""Catalog sources as links: URLs in a source text become links, and a SkyPilot catalog file at a commit
(`catalogs/v8/lambda/vms.csv@<commit>`, how the price snapshot records its rows) links to that file there."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

SKYPILOT_CATALOG = "https://github.com/skypilot-org/skypilot-catalog/blob/{commit}/{path}"
_URL = re.compile(r"https?://[^\s;,)]+")
_CATALOG_FILE = re.compile(r"^(catalogs/[\w./-]+)@([0-9a-f]{7,40})$")


def source_url(text: str) -> str | None:
    """The address a source text points at, if it has one."""
    match = _CATALOG_FILE.match(text.strip())
    if match:
        return SKYPILOT_CATALOG.format(commit=match.group(2), path=match.group(1))
    url = _URL.search(text)
    return url.group(0) if url else None


@register.filter
def source_links(value: Any) -> SafeString:
    """The source text with each address in it as a link (and the rest as text)."""
    text = str(value or "")
    match = _CATALOG_FILE.match(text.strip())
    if match:
        return format_html(
            '<a href="{}" rel="noopener">{}</a> at {}',
            source_url(text),
            match.group(1),
            match.group(2)[:10],
        )
    parts: list[tuple[str, str]] = []
    position = 0
    for url in _URL.finditer(text):
        parts.append(("text", text[position : url.start()]))
        parts.append(("url", url.group(0)))
        position = url.end()
    parts.append(("text", text[position:]))
    return format_html_join(
        "",
        "{}",
        (
            (
                format_html('<a href="{}" rel="noopener">{}</a>', part, _short(part))
                if kind == "url"
                else part,
            )
            for kind, part in parts
            if part
        ),
    )


def _short(url: str) -> str:
    """The host and the end of the path: readable in a table cell."""
    host, _, path = url.split("://", 1)[-1].partition("/")
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{host}/…/{tail}" if tail and tail != path else f"{host}/{path}".rstrip("/")
