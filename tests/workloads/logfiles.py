"""Request logs in the formats users have, written the way their owners write them (see apps/workloads/logs.py
for the sources), from generated arrivals whose rates, lengths and burstiness the tests know."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Request:
    at_s: float  # Unix seconds
    prompt: int
    output: int


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def arrivals(
    *, start_s: float, seconds: float, rate_per_s: float, cv: float = 1.0, seed: int = 0
) -> Iterator[float]:
    """Arrival times with gamma gaps of mean 1/rate and the given coefficient of variation (1: Poisson;
    0: evenly spaced)."""
    rng = random.Random(seed)
    moment = start_s
    while True:
        if cv == 0:
            moment += 1 / rate_per_s
        else:
            shape = 1 / cv**2
            moment += rng.gammavariate(shape, 1 / (rate_per_s * shape))
        if moment >= start_s + seconds:
            return
        yield moment


def requests(
    times: Iterable[float], *, seed: int = 1, prompt_median: int = 600, output_median: int = 150
) -> list[Request]:
    """Log-normal lengths (sigma 1) around the given medians, at least 1 token."""
    rng = random.Random(seed)
    return [
        Request(
            t,
            max(1, round(rng.lognormvariate(math.log(prompt_median), 1))),
            max(1, round(rng.lognormvariate(math.log(output_median), 0.8))),
        )
        for t in times
    ]


def _iso(at_s: float, sep: str = " ") -> str:
    return (
        datetime.fromtimestamp(at_s, tz=UTC).replace(tzinfo=None).isoformat(sep=sep, timespec="microseconds")
    )


def azure_2023_csv(rows: Iterable[Request]) -> Iterator[str]:
    """data/AzureLLMInferenceTrace_code.csv: naive UTC times with seven fractional digits."""
    yield "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    for r in rows:
        yield f"{_iso(r.at_s)}0,{r.prompt},{r.output}\n"


def azure_2024_csv(rows: Iterable[Request]) -> Iterator[str]:
    """The 2024 one-week traces: an explicit +00:00 offset, six fractional digits (none on a whole second)."""
    yield "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    for r in rows:
        moment = datetime.fromtimestamp(r.at_s, tz=UTC)
        yield f"{moment.isoformat(sep=' ')},{r.prompt},{r.output}\n"


def openai_chat_jsonl(rows: Iterable[Request]) -> Iterator[str]:
    """ChatCompletion objects as the API returns them, one per line: `created` is whole Unix seconds."""
    for index, r in enumerate(rows):
        completion = {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": int(r.at_s),
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": r.prompt,
                "completion_tokens": r.output,
                "total_tokens": r.prompt + r.output,
            },
        }
        yield json.dumps(completion) + "\n"


def openai_batch_jsonl(rows: Iterable[Request], *, failed_every: int = 0) -> Iterator[str]:
    """Batch API output lines wrapping chat completions; every failed_every-th one an expired request."""
    for index, line in enumerate(openai_chat_jsonl(rows), start=1):
        if failed_every and index % failed_every == 0:
            error = {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion window expired.",
            }
            yield (
                json.dumps(
                    {"id": f"batch_req_{index}", "custom_id": f"r{index}", "response": None, "error": error}
                )
                + "\n"
            )
        else:
            response = {"status_code": 200, "request_id": f"req_{index}", "body": json.loads(line)}
            yield (
                json.dumps(
                    {
                        "id": f"batch_req_{index}",
                        "custom_id": f"r{index}",
                        "response": response,
                        "error": None,
                    }
                )
                + "\n"
            )


def openai_responses_csv(rows: Iterable[Request]) -> Iterator[str]:
    """Responses objects flattened to CSV (pandas.json_normalize style column names)."""
    yield "id,created_at,model,status,usage.input_tokens,usage.output_tokens,usage.total_tokens\n"
    for index, r in enumerate(rows):
        yield f"resp_{index},{r.at_s:.3f},gpt-4.1,completed,{r.prompt},{r.output},{r.prompt + r.output}\n"


LITELLM_COLUMNS = (
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "request_duration_ms", "completionStartTime", "model", "model_id", "model_group",
    "custom_llm_provider", "api_base", "user", "metadata", "cache_hit", "cache_key", "request_tags", "team_id",
    "organization_id", "end_user", "requester_ip_address", "messages", "response", "session_id", "status",
)  # fmt: skip


def _litellm_row(index: int, r: Request, status: str) -> dict[str, object]:
    start = datetime.fromtimestamp(r.at_s, tz=UTC)
    return {
        "request_id": f"chatcmpl-{index}",
        "call_type": "acompletion",
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": 0.00012,
        "total_tokens": r.prompt + r.output,
        "prompt_tokens": r.prompt,
        "completion_tokens": r.output,
        "startTime": start,
        "endTime": start,
        "request_duration_ms": 812,
        "completionStartTime": start,
        "model": "gpt-4o",
        "model_id": "a1b2",
        "model_group": "gpt-4o",
        "custom_llm_provider": "openai",
        "api_base": "https://api.openai.com/v1",
        "user": "",
        "metadata": {"user_api_key_alias": "svc", "status": status},
        "cache_hit": "False",
        "cache_key": "Cache OFF",
        "request_tags": [],
        "team_id": "",
        "organization_id": "",
        "end_user": "",
        "requester_ip_address": "10.0.0.7",
        "messages": {},
        "response": {},
        "session_id": f"sess-{index}",
        "status": status,
    }


def litellm_csv(rows: Iterable[Request], *, failed_every: int = 0) -> Iterator[str]:
    """A `\\copy "LiteLLM_SpendLogs" TO … CSV HEADER` export: timestamp(3) values, JSON columns quoted."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LITELLM_COLUMNS)
    yield buffer.getvalue()
    for index, r in enumerate(rows, start=1):
        status = "failure" if failed_every and index % failed_every == 0 else "success"
        row = _litellm_row(index, r, status)
        cells = []
        for column in LITELLM_COLUMNS:
            value = row[column]
            if isinstance(value, datetime):
                cells.append(value.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds"))
            elif isinstance(value, dict | list):
                cells.append(json.dumps(value))
            else:
                cells.append(str(value))
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        yield buffer.getvalue()


def litellm_jsonl(rows: Iterable[Request]) -> Iterator[str]:
    """Spend-log rows as /spend/logs returns them, one per line: ISO times with an offset."""
    for index, r in enumerate(rows, start=1):
        row = _litellm_row(index, r, "success")
        yield json.dumps(row, default=lambda v: v.isoformat()) + "\n"


def plain_csv(rows: Iterable[Request]) -> Iterator[str]:
    yield "timestamp,input_tokens,output_tokens\n"
    for r in rows:
        yield f"{_iso(r.at_s, 'T')}Z,{r.prompt},{r.output}\n"


def encoded(lines: Iterable[str]) -> bytes:
    return "".join(lines).encode()
