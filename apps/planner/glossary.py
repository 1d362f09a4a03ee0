"""The one glossary: every term a manager may not know, as the pages' tooltips, the glossary page and the PDF
report explain it. Keys are what templates pass to `{% term %}`. Pure; no Django."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    label: str  # as written on the pages
    name: str  # spelled out
    meaning: str


TERMS: dict[str, Term] = {
    term.label.lower(): term
    for term in (
        Term("TTFT", "time to first token", "How long a user waits from sending a request until the first "
             "word of the answer arrives (queueing plus reading the prompt). Targets are set on the 95th "
             "percentile: 95 of 100 requests are at least this fast."),
        Term("ITL", "inter-token latency", "The time between two consecutive words (tokens) of one answer "
             "while it streams, per token: 50 ms is 20 tokens a second, faster than people read. The target is "
             "on the 95th percentile of all gaps."),
        Term("p95", "95th percentile", "The value 95% of requests stay under; the slowest 5% are above it."),
        Term("TP", "tensor parallelism", "One copy of the model split across several GPUs of one server, each "
             "holding a slice of every layer. \"TP2\" uses 2 GPUs per replica: more memory and speed per "
             "replica, at the price of more GPUs."),
        Term("EP", "expert parallelism", "For mixture-of-experts models: the experts are spread over the GPUs "
             "of a replica, so each GPU holds and reads only some of them."),
        Term("PP", "pipeline parallelism", "The model's layers split in stages across servers, for models "
             "that do not fit one server's GPUs."),
        Term("replica", "replica", "One running copy of the model serving requests; a fleet adds replicas to "
             "serve more traffic."),
        Term("quantization", "quantization", "Storing the model's weights with fewer bits (fp8, int4, ...) "
             "than its original 16: less memory and faster answers, with a small loss of quality the workload's "
             "quality bar decides whether to accept."),
        Term("bf16", "bfloat16", "The model's original 16-bit precision: no quantization, no quality loss."),
        Term("fp8", "8-bit floating point", "Weights (and often activations) in 8 bits: half the memory of bf16; "
             "the catalog's Engines and quantizations page lists its typical quality loss and the GPUs that "
             "run it natively."),
        Term("goodput", "goodput", "Requests per second that finish within the latency targets; throughput "
             "that misses the targets does not count."),
        Term("Pareto", "Pareto frontier", "Options no other option beats on both cost and latency margin at "
             "once (marked ◆): every other option is worse on one without being better on the other."),
        Term("warm standby", "warm standby", "Replicas kept running in every hour (min replicas) so requests "
             "never wait for one to start; 0 lets the fleet scale to zero when there is no traffic, and the "
             "first request afterwards waits for a cold start."),
        Term("cold start", "cold start", "Starting a replica: pulling the weights onto the GPUs and starting "
             "the engine. The plan estimates it from the weights' size (see How this was computed)."),
        Term("headroom", "headroom", "Spare capacity planned on top of each hour's traffic, for bursts within "
             "the hour; 20% sizes each hour for 1.2 times its rate."),
        Term("capacity", "capacity per replica", "The highest request rate one replica serves while p95 TTFT "
             "and p95 ITL stay within the targets, as predicted by the performance model."),
        Term("error band", "error band", "How far the performance model's predictions were off on published "
             "benchmarks it had not seen (cross-validated): ±9% means typically within 9%."),
        Term("break-even", "break-even volume", "The monthly token volume at which a hosted API would cost "
             "what the self-hosted fleet costs: above it self-hosting is cheaper."),
        Term("spot", "spot price", "A discounted price for capacity the provider may take back at short "
             "notice."),
        Term("on-demand", "on-demand price", "The listed hourly price, paid only while the instance runs, "
             "with no commitment."),
        Term("marketplace", "marketplace listing", "A listing that resells another cloud's or an owner's "
             "capacity: often the cheapest, but it may be rented out when you try to rent it."),
        Term("median market", "median market price", "The middle of all providers' listed prices for a GPU "
             "per GPU-hour: a price one can expect to find, not the single cheapest listing."),
        Term("KV cache", "key-value cache", "GPU memory holding what the model has read of each running "
             "request; it limits how many requests a replica serves at once."),
        Term("prefix cache", "prefix cache", "The engine reuses the work already done on a prompt's shared "
             "beginning (system prompt, earlier turns), so that part is not read again."),
        Term("tokens", "tokens", "The pieces of words a model reads and writes; prices and lengths are "
             "counted in them."),
        Term("scheduled scaling", "scheduled scaling", "Running, each hour, only the replicas that hour's "
             "traffic needs, instead of a fleet sized for the peak all day."),
    )
}  # fmt: skip


def lookup(key: str) -> Term | None:
    return TERMS.get(key.lower())
