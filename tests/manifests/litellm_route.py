"""Run inside the LiteLLM 1.83.14 virtualenv (ADVISOR_LITELLM_PYTHON): build litellm.Router from a bundle's
litellm/config.yaml the way the proxy does (router_settings as Router arguments, litellm_settings as module
settings) and send each prompt through it, in-process.

    python litellm_route.py CONFIG.json < prompts.json > results.json

CONFIG.json is the bundle's litellm/config.yaml as parsed by the test (plain data either way).

prompts.json: [{"words": N}, ...]; results: [{"tokens": counted by the router, "deployment": the model_info id
that answered, "content": what the backend said}, ...]. Backends and keys come from the environment, as in the
pod (os.environ/NAME in the config).
"""

import asyncio
import json
import sys

import litellm


async def _route(router: litellm.Router, model: str, words: int) -> dict[str, object]:
    messages = [{"role": "user", "content": " ".join(["hello"] * words)}]
    response = await router.acompletion(model=model, messages=messages, max_tokens=8)
    return {
        "tokens": litellm.token_counter(messages=messages),
        "deployment": response._hidden_params.get("model_id"),
        "content": response.choices[0].message.content,
    }


async def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    for key, value in (config.get("litellm_settings") or {}).items():
        setattr(litellm, key, value)
    router = litellm.Router(model_list=config["model_list"], **(config.get("router_settings") or {}))
    model = config["model_list"][0]["model_name"]
    prompts = json.load(sys.stdin)
    results = [await _route(router, model, int(p["words"])) for p in prompts]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
