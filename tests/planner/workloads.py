"""Workload documents the planner tests share: a 70B RAG assistant, a voice agent whose targets no deployment
meets (on A100s at bf16 only), and a nightly batch that may scale to zero."""

from __future__ import annotations

import copy
from typing import Any

from tests.factories import WORKLOAD_DOCUMENT

RAG_70B: dict[str, Any] = {
    **copy.deepcopy(WORKLOAD_DOCUMENT),
    "name": "rag-70b",
    "model": "llama-3.1-70b",
    "traffic": {"hourly_requests_per_s": [0.4] * 7 + [7.5] * 11 + [1.0] * 6},
    "prompt_tokens": {"mean": 3000, "p50": 2500, "p95": 7000, "max": 12000},
    "output_tokens": {"mean": 300, "p50": 250, "p95": 800, "max": 2048},
    "slo": {"ttft_p95_ms": 1500, "itl_p95_ms": 50},
}
TIGHT: dict[str, Any] = {
    **copy.deepcopy(RAG_70B),
    "name": "voice-tight",
    "slo": {"ttft_p95_ms": 60, "itl_p95_ms": 8},
    "quality": {"allowed_quantizations": ["bf16"]},
    "constraints": {
        "gpus": ["a100-80gb"],
        "providers": [],
        "max_gpus_per_replica": 8,
        "spot": False,
        "min_replicas": 1,
    },
}
NIGHTLY: dict[str, Any] = {
    **copy.deepcopy(WORKLOAD_DOCUMENT),
    "name": "nightly",
    "traffic": {"hourly_requests_per_s": [4.0] * 6 + [0.0] * 15 + [2.0] * 3},
    "slo": {"ttft_p95_ms": 20000, "itl_p95_ms": 200},
    "constraints": {"gpus": [], "providers": [], "max_gpus_per_replica": 8, "spot": False, "min_replicas": 0},
}
