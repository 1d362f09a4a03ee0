"""Pinned engine releases as data: images per accelerator, endpoints, metric names and each release's flags.

Everything comes from workers/release_data/engines.json (facts with the file and tag they were read from) and
the flag lists in workers/release_data/flags/, which scripts/extract_engine_flags.py extracts from each
release's own parser. workers/engines.py builds its definitions from here, so the benchmark workers and the
manifests use one pin, and `unknown_flags` lets the tests hold every emitted flag against the pinned parser.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "release_data"
ACCELERATOR_KINDS = ("cuda", "rocm", "cpu")


@dataclass(frozen=True)
class FlagList:
    """The options one release's parser accepts, and where the list was read from."""

    engine: str
    version: str
    tag: str
    source: Mapping[str, Any]
    method: str
    flags: frozenset[str]
    choices: Mapping[str, tuple[str, ...]]
    # Dotted keys of an options file the engine reads (trtllm-serve's --extra_llm_api_options), where it has one.
    llm_api_options: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EngineRelease:
    engine: str
    version: str
    tag: str
    images: Mapping[str, str]  # accelerator kind -> pinned image; a kind missing here has no published build
    images_source: str
    verified: str  # how the project checked this release: started for real here, or against its parser
    flag_list: FlagList


@dataclass(frozen=True)
class EngineFacts:
    """What the project relies on for one engine, at its pinned current release."""

    engine: str
    display_name: str
    docs_url: str
    port: int
    health_path: str
    version_path: str
    version_key: str  # the JSON key of version_path's answer holding the version
    metrics_path: str
    metrics_enabled_by: tuple[str, ...]
    queue_metric: str  # Prometheus gauge of requests waiting for admission: the autoscaling signal
    running_metric: str
    endpoints_source: str
    metrics_source: str
    quantize_on_load: frozenset[str]  # precisions the engine makes from 16-bit weights while loading
    quantize_on_load_source: str
    accelerators: tuple[str, ...]
    current: EngineRelease
    releases: Mapping[str, EngineRelease]

    @property
    def exported_metrics(self) -> frozenset[str]:
        return frozenset({self.queue_metric, self.running_metric})


def _flag_list(engine: str, file_name: str) -> FlagList:
    raw = json.loads((DATA_DIR / "flags" / file_name).read_text(encoding="utf-8"))
    if raw["engine"] != engine:
        raise ValueError(f"{file_name} lists flags of {raw['engine']}, not {engine}")
    return FlagList(
        engine=engine,
        version=str(raw["version"]),
        tag=str(raw["tag"]),
        source=MappingProxyType(dict(raw["source"])),
        method=str(raw["method"]),
        flags=frozenset(raw["flags"]),
        choices=MappingProxyType({flag: tuple(values) for flag, values in raw["choices"].items()}),
        llm_api_options=frozenset((raw.get("llm_api_options") or {}).get("keys", ())),
    )


def _release(engine: str, version: str, raw: Mapping[str, Any]) -> EngineRelease:
    images = dict(raw["images"])
    unknown = set(images) - set(ACCELERATOR_KINDS)
    if unknown:
        raise ValueError(f"{engine} {version}: unknown accelerator kinds {sorted(unknown)}")
    flag_list = _flag_list(engine, raw["flags"])
    if flag_list.version != version:
        raise ValueError(f"{engine} {version}: {raw['flags']} is for {flag_list.version}")
    return EngineRelease(
        engine=engine,
        version=version,
        tag=str(raw["tag"]),
        images=MappingProxyType(images),
        images_source=str(raw["images_source"]),
        verified=str(raw["verified"]),
        flag_list=flag_list,
    )


def _facts(engine: str, raw: Mapping[str, Any]) -> EngineFacts:
    releases = {version: _release(engine, version, r) for version, r in raw["releases"].items()}
    return EngineFacts(
        engine=engine,
        display_name=str(raw["display_name"]),
        docs_url=str(raw["docs_url"]),
        port=int(raw["port"]),
        health_path=str(raw["health_path"]),
        version_path=str(raw["version_path"]),
        version_key=str(raw["version_key"]),
        metrics_path=str(raw["metrics_path"]),
        metrics_enabled_by=tuple(raw["metrics_enabled_by"]),
        queue_metric=str(raw["queue_metric"]),
        running_metric=str(raw["running_metric"]),
        endpoints_source=str(raw["endpoints_source"]),
        metrics_source=str(raw["metrics_source"]),
        quantize_on_load=frozenset(raw["quantize_on_load"]),
        quantize_on_load_source=str(raw["quantize_on_load_source"]),
        accelerators=tuple(raw["accelerators"]),
        current=releases[str(raw["current"])],
        releases=MappingProxyType(releases),
    )


@functools.cache
def all_facts() -> Mapping[str, EngineFacts]:
    raw = json.loads((DATA_DIR / "engines.json").read_text(encoding="utf-8"))
    return MappingProxyType({engine: _facts(engine, r) for engine, r in raw["engines"].items()})


def engine_facts(engine: str) -> EngineFacts:
    facts = all_facts()
    if engine not in facts:
        raise KeyError(f"no pinned release data for {engine!r}; known: {', '.join(facts)}")
    return facts[engine]


def release(engine: str, version: str | None = None) -> EngineRelease:
    facts = engine_facts(engine)
    if version is None:
        return facts.current
    if version not in facts.releases:
        raise KeyError(f"{engine} {version} is not pinned; pinned: {', '.join(facts.releases)}")
    return facts.releases[version]


def _option(token: str) -> str | None:
    """The option a command-line token names ("--port=80" -> "--port"), or None for a value."""
    if not token.startswith("-") or token == "-" or token.lstrip("-")[:1].isdigit():
        return None  # a value: "-1" (n_gpu_layers), a bare dash
    return token.split("=", 1)[0]


def unknown_flags(engine: str, args: Iterable[str], version: str | None = None) -> list[str]:
    """Problems with `args` against the release's parser: options it lacks and values outside its choices."""
    flag_list = release(engine, version).flag_list
    tokens = list(args)
    problems = []
    for index, token in enumerate(tokens):
        option = _option(token)
        if option is None:
            continue
        if option not in flag_list.flags:
            problems.append(f"{option} is not an option of {engine} {flag_list.version}")
            continue
        choices = flag_list.choices.get(option)
        value = (
            token.split("=", 1)[1]
            if "=" in token
            else (tokens[index + 1] if index + 1 < len(tokens) else None)
        )
        if choices and value is not None and value not in choices:
            problems.append(
                f"{option} {value} is not one of {engine} {flag_list.version}'s {', '.join(choices)}"
            )
    return problems


def _dotted_keys(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def unknown_llm_api_options(engine: str, options: Mapping[str, Any], version: str | None = None) -> list[str]:
    """Keys of an engine options file that the release's recorded list does not hold."""
    flag_list = release(engine, version).flag_list
    return [
        f"{key} is not an LLM-API option recorded for {engine} {flag_list.version}"
        for key in _dotted_keys(options)
        if key not in flag_list.llm_api_options
    ]
