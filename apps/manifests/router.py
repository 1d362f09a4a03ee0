"""Overflow to a hosted API through a LiteLLM router: its config, and how catalog API rows map to LiteLLM.

Self-hosted engines queue rather than reject, so overflow only happens if the router caps what it sends them:
per-deployment `rpm` and `max_parallel_requests` (checked before the call with `enable_pre_call_checks`) and a
first-token timeout. A capped or failing self-hosted deployment raises in the router, which then falls back to
the hosted model group. Every key is read from the environment (`os.environ/NAME`), never written here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from apps.manifests.layout import Layout
from apps.manifests.request import ManifestError, OverflowTarget

LITELLM_IMAGE = "ghcr.io/berriai/litellm:main-v1.83.14-stable"
SELF_HOSTED_BASE_ENV = "SELF_HOSTED_API_BASE"
SELF_HOSTED_KEY_ENV = "SELF_HOSTED_API_KEY"
# The engines run without authentication behind a cluster-internal Service; the OpenAI client still needs
# some key, and an explicit one keeps LiteLLM from sending OPENAI_API_KEY to the self-hosted engine.
SELF_HOSTED_KEY_DEFAULT = "unauthenticated"
OVERFLOW_SUFFIX = "-overflow"

# Catalog provider -> (LiteLLM provider prefix, environment variable LiteLLM reads the key from).
PROVIDERS: dict[str, tuple[str, str]] = {
    "OpenAI": ("openai", "OPENAI_API_KEY"),
    "Anthropic": ("anthropic", "ANTHROPIC_API_KEY"),
    "Google": ("gemini", "GEMINI_API_KEY"),
    "Together AI": ("together_ai", "TOGETHERAI_API_KEY"),
    "DeepInfra": ("deepinfra", "DEEPINFRA_API_KEY"),
    "Fireworks": ("fireworks_ai", "FIREWORKS_AI_API_KEY"),
}
# Catalog (provider, model) -> the provider's model id. Rows naming a family or a price tier rather than one
# model ("Claude Sonnet 4 / 4.5 / 4.6") are absent: they need an explicit `litellm_model`.
MODEL_IDS: dict[tuple[str, str], str] = {
    ("OpenAI", "GPT-4o"): "gpt-4o",
    ("OpenAI", "GPT-4o-mini"): "gpt-4o-mini",
    ("OpenAI", "GPT-4.1"): "gpt-4.1",
    ("OpenAI", "GPT-5"): "gpt-5",
    ("OpenAI", "GPT-5 mini"): "gpt-5-mini",
    ("OpenAI", "GPT-5.2"): "gpt-5.2",
    ("Anthropic", "Claude Haiku 4.5"): "claude-haiku-4-5",
    ("Google", "Gemini 2.5 Pro"): "gemini-2.5-pro",
    ("Google", "Gemini 2.5 Flash"): "gemini-2.5-flash",
    ("Together AI", "Llama 3.3 70B Instruct Turbo"): "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ("Together AI", "Llama 3.1 8B Instruct Turbo"): "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
    ("DeepInfra", "Meta-Llama-3.1-8B-Instruct"): "meta-llama/Meta-Llama-3.1-8B-Instruct",
    ("DeepInfra", "Meta-Llama-3.1-70B-Instruct-Turbo (FP8)"): "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
    ("DeepInfra", "Llama-3.3-70B-Instruct-Turbo (FP8)"): "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ("Fireworks", "<=16B models (e.g. Llama 3.1 8B)"): "accounts/fireworks/models/llama-v3p1-8b-instruct",
    (
        "Fireworks",
        "16.1B-80B models (e.g. Llama 3.1 70B)",
    ): "accounts/fireworks/models/llama-v3p1-70b-instruct",
}


def overflow_target(spec: Mapping[str, Any]) -> OverflowTarget:
    """An OverflowTarget from {provider, model[, litellm_model, api_key_env, api_base]}."""
    provider = str(spec.get("provider") or "")
    model = str(spec.get("model") or "")
    prefix, default_env = PROVIDERS.get(provider, ("", ""))
    litellm_model = spec.get("litellm_model")
    if not litellm_model:
        model_id = MODEL_IDS.get((provider, model))
        if model_id is None or not prefix:
            raise ManifestError(
                f"no LiteLLM model id known for {provider!r} {model!r}; give overflow litellm_model "
                "(e.g. openai/gpt-4o-mini) and api_key_env"
            )
        litellm_model = f"{prefix}/{model_id}"
    api_key_env = str(spec.get("api_key_env") or default_env)
    if not api_key_env.isidentifier():
        raise ManifestError(f"overflow api_key_env must be an environment variable name, got {api_key_env!r}")
    api_base = spec.get("api_base")
    return OverflowTarget(
        provider=provider,
        model=model,
        litellm_model=str(litellm_model),
        api_key_env=api_key_env,
        api_base=str(api_base) if api_base else None,
    )


def cheapest_overflow(api_alternatives: Iterable[Mapping[str, Any]]) -> OverflowTarget:
    """The planner's preferred hosted alternative that LiteLLM can call without more configuration.

    Same order as the planner's own reference API: the same model and size first, then the same family, then
    anything, cheapest first within each, so overflow answers come from the closest model available.
    """
    ranked = sorted(
        api_alternatives,
        key=lambda alt: (
            not alt.get("same_model_size", False),
            not alt.get("same_model_family", False),
            float(alt.get("monthly_cost_usd") or math.inf),
        ),
    )
    for alternative in ranked:
        try:
            return overflow_target(alternative)
        except ManifestError:
            continue
    raise ManifestError(
        "none of the plan's api_alternatives maps to a LiteLLM model; give overflow explicitly"
    )


def self_hosted_params(layout: Layout, *, base_env: str = SELF_HOSTED_BASE_ENV) -> dict[str, Any]:
    """LiteLLM parameters of one self-hosted deployment, its address read from `base_env`."""
    request = layout.request
    params: dict[str, Any] = {
        "model": f"openai/{layout.served_model_id}",
        "api_base": f"os.environ/{base_env}",
        "api_key": f"os.environ/{SELF_HOSTED_KEY_ENV}",
        # Streaming: a request waiting this long for its first chunk is better served by the hosted model.
        "stream_timeout": request.first_token_timeout_s,
        "timeout": request.first_token_timeout_s + request.drain_s,
        # Capped at the planned peak: beyond it the engines would only queue.
        "max_parallel_requests": request.max_num_seqs * layout.peak,
    }
    if request.max_requests_per_s_per_replica:
        params["rpm"] = max(1, math.floor(request.max_requests_per_s_per_replica * 60 * layout.peak))
    return params


def _hosted_params(overflow: OverflowTarget) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": overflow.litellm_model,
        "api_key": f"os.environ/{overflow.api_key_env}",
    }
    if overflow.api_base:
        params["api_base"] = overflow.api_base
    return params


def router_settings() -> dict[str, Any]:
    """What every router of a bundle sets: caps and lengths checked before the call (`enable_pre_call_checks`),
    and no retries on a self-hosted group, so a capped or failing engine goes straight to what follows it (the
    fallback, or the next `order`); three failures a minute cool a deployment down for 30 s."""
    return {
        "routing_strategy": "simple-shuffle",
        "enable_pre_call_checks": True,
        "num_retries": 0,
        "allowed_fails": 3,
        "cooldown_time": 30,
    }


def litellm_config(layout: Layout, overflow: OverflowTarget) -> dict[str, Any]:
    primary = layout.request.served_name
    hosted = f"{primary}{OVERFLOW_SUFFIX}"
    return {
        "model_list": [
            {"model_name": primary, "litellm_params": self_hosted_params(layout)},
            {"model_name": hosted, "litellm_params": _hosted_params(overflow)},
        ],
        "router_settings": {
            **router_settings(),
            "fallbacks": [{primary: [hosted]}],
            # A prompt longer than the engine's max model length fails fast there; the hosted model may take it.
            "context_window_fallbacks": [{primary: [hosted]}],
        },
        "litellm_settings": {"drop_params": True},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


def router_environment(self_hosted_base: str) -> dict[str, str]:
    """Non-secret environment of the router; secrets come from the Secret or the shell."""
    return {SELF_HOSTED_BASE_ENV: self_hosted_base, SELF_HOSTED_KEY_ENV: SELF_HOSTED_KEY_DEFAULT}
