"""JSON Schema of result.json: the contract between `python -m workers bench` and `manage.py import_benchmark`.

The importer can validate with `validate_result(data)` (jsonschema is a main dependency). Only what importers
rely on is required; results carry more (client health, token cross-checks, notes) and may grow.
"""

from __future__ import annotations

from typing import Any

# Bounds keep every value inside the importer's columns (PostgreSQL integer and smallint) and far above any real
# measurement, so a result that validates can always be stored.
_INT32 = 2**31 - 1
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": _INT32}
_TOKENS: dict[str, Any] = {"type": "number", "minimum": 1, "maximum": 10_000_000}
_NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
_PERCENTILES: dict[str, Any] = {
    "type": "object",
    "required": ["p50", "p90", "p95", "p99"],
    "properties": dict.fromkeys(("p50", "p90", "p95", "p99", "mean", "max"), _NUMBER_OR_NULL),
}
_LENGTH: dict[str, Any] = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        {
            "type": "object",
            "required": ["mean", "p50", "p95", "max"],
            "properties": dict.fromkeys(("mean", "p50", "p95", "max"), _TOKENS),
        },
    ]
}
_SAMPLE: dict[str, Any] = {
    "type": "object",
    "required": ["index", "ok", "error", "ttft_ms", "e2e_ms", "output_tokens", "prompt_tokens_planned"],
    "properties": {
        "index": _COUNT,
        "ok": {"type": "boolean"},
        "error": {"type": ["string", "null"]},
        "ttft_ms": _NUMBER_OR_NULL,
        "e2e_ms": _NUMBER_OR_NULL,
        "tpot_ms": _NUMBER_OR_NULL,
        "output_tokens": _COUNT,
        "prompt_tokens_planned": _COUNT,
        "token_count_mismatch": {"type": "boolean"},
    },
}
_LEVEL: dict[str, Any] = {
    "type": "object",
    "required": [
        "ttft_ms",
        "itl_ms",
        "tpot_ms",
        "e2e_ms",
        "output_tokens_per_s",
        "requests_per_s",
        "goodput_requests_per_s",
        "requests_ok",
        "requests_failed",
    ],
    "oneOf": [{"required": ["concurrency"]}, {"required": ["rate"]}],
    "properties": {
        "concurrency": {"type": "integer", "minimum": 1, "maximum": _INT32},
        "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000},
        "ttft_ms": _PERCENTILES,
        "itl_ms": _PERCENTILES,
        "tpot_ms": _PERCENTILES,
        "e2e_ms": _PERCENTILES,
        "output_tokens_per_s": {"type": "number", "minimum": 0},
        "requests_per_s": {"type": "number", "minimum": 0},
        "goodput_requests_per_s": {"type": "number", "minimum": 0},
        "requests_ok": _COUNT,
        "requests_failed": _COUNT,
        "samples": {"type": "array", "items": _SAMPLE},
    },
}
RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "advisor benchmark result",
    "type": "object",
    "required": [
        "schema_version",
        "hardware",
        "engine",
        "levels",
        "model",
        "isl",
        "osl",
        "quant",
        "tp",
        "started_at",
        "finished_at",
    ],
    "properties": {
        "schema_version": {"const": 1},
        "hardware": {
            "type": "object",
            "required": ["accelerator", "accelerator_model", "accelerator_count", "cpu_model", "memory_mib"],
            "properties": {"accelerator_count": {"type": "integer", "minimum": 0, "maximum": 4096}},
        },
        "engine": {
            "type": "object",
            "required": ["name", "version", "args"],
            "properties": {
                "name": {"enum": ["vllm", "sglang", "trtllm", "tgi", "llamacpp", "transformers"]},
                "version": {"type": ["string", "null"]},
                "args": {"type": "array", "items": {"type": "string"}},
            },
        },
        "model": {"type": "string"},
        "isl": _LENGTH,
        "osl": _LENGTH,
        "quant": {"type": "string"},
        "tp": {"type": "integer", "minimum": 1, "maximum": 1024},
        "started_at": {"type": "string"},
        "finished_at": {"type": ["string", "null"]},
        "levels": {"type": "array", "items": _LEVEL, "maxItems": 64},
    },
}


def validate_result(result: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `result` breaks the contract."""
    import jsonschema

    jsonschema.validate(result, RESULT_SCHEMA)
