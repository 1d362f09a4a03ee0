"""Expert-, data-, pipeline-parallel and multi-host replicas as each engine's arguments, or a refusal naming why."""

from __future__ import annotations

import pytest

from workers.engines import (
    SGLANG_DIST_INIT_PORT,
    ServeConfig,
    UnsupportedCandidate,
    can_split,
    engine_files,
    serve_args,
    trtllm_options,
)

LEADER = "$(LWS_LEADER_ADDRESS)"
WORKER_RANK = "$(LWS_WORKER_INDEX)"


def _config(engine: str, **changes: object) -> ServeConfig:
    base: dict[str, object] = {
        "engine": engine,
        "model_path": "org/model",
        "served_name": "m",
        "quantization": "fp8",
    }
    return ServeConfig(**{**base, **changes})  # type: ignore[arg-type]


def _value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def test_vllm_expert_parallel_with_data_parallel_attention() -> None:
    # given DP8 EP8 (the planner's tp=1, dp=8, ep=8) and a replica that admits 256 sequences
    args = serve_args(
        _config("vllm", tensor_parallel=1, data_parallel=8, expert_parallel=8, max_num_seqs=256)
    )

    # then vLLM runs 8 data-parallel engines with the experts split over all of them, 32 sequences each
    assert _value(args, "--tensor-parallel-size") == "1"
    assert _value(args, "--data-parallel-size") == "8"
    assert "--enable-expert-parallel" in args
    assert _value(args, "--max-num-seqs") == "32"
    assert "--nnodes" not in args


def test_vllm_two_hosts_join_natively_and_only_the_leader_serves() -> None:
    common = {"tensor_parallel": 8, "pipeline_parallel": 2, "nnodes": 2, "leader_address": LEADER}
    leader = serve_args(_config("vllm", **common))
    worker = serve_args(_config("vllm", node_rank=WORKER_RANK, **common))

    for args in (leader, worker):
        assert _value(args, "--pipeline-parallel-size") == "2"
        assert _value(args, "--nnodes") == "2"
        assert _value(args, "--master-addr") == LEADER
    assert _value(leader, "--node-rank") == "0"
    assert "--headless" not in leader
    assert _value(worker, "--node-rank") == WORKER_RANK
    assert "--headless" in worker


def test_sglang_counts_attention_dp_inside_the_tensor_group() -> None:
    args = serve_args(
        _config(
            "sglang",
            tensor_parallel=1,
            data_parallel=16,
            expert_parallel=16,
            nnodes=2,
            node_rank=WORKER_RANK,
            leader_address=LEADER,
        )
    )
    assert _value(args, "--tp-size") == "16"
    assert _value(args, "--attn-dp-size") == "16"
    assert _value(args, "--ep-size") == "16"
    assert _value(args, "--node-rank") == WORKER_RANK
    assert _value(args, "--dist-init-addr") == f"{LEADER}:{SGLANG_DIST_INIT_PORT}"
    # SGLang's --max-running-requests is the replica's total, split over the attention-DP ranks by SGLang
    assert _value(args, "--max-running-requests") == "256"


def test_trtllm_attention_dp_and_block_reuse_go_to_the_options_file() -> None:
    config = _config("trtllm", tensor_parallel=1, data_parallel=8, expert_parallel=8, prefix_caching=False)
    args = serve_args(config)

    assert _value(args, "--tp_size") == "8"
    assert _value(args, "--ep_size") == "8"
    options = trtllm_options(config)
    assert options["enable_attention_dp"] is True
    assert options["kv_cache_config"] == {"enable_block_reuse": False, "free_gpu_memory_fraction": 0.9}
    (text,) = engine_files(config).values()
    assert "enable_attention_dp: true" in text
    assert "  enable_block_reuse: false" in text


@pytest.mark.parametrize(
    ("engine", "changes", "reason"),
    [
        ("tgi", {"tensor_parallel": 4, "expert_parallel": 4}, "cannot run expert parallelism: its launcher"),
        (
            "llamacpp",
            {"pipeline_parallel": 2, "quantization": "gguf-q4_k_m"},
            "cannot run pipeline parallelism",
        ),
        ("trtllm", {"tensor_parallel": 8, "nnodes": 2, "leader_address": LEADER}, "one MPI world"),
        ("trtllm", {"tensor_parallel": 2, "data_parallel": 4}, "not expressible"),
        ("vllm", {"tensor_parallel": 8, "expert_parallel": 4}, "spans all 8"),
        ("sglang", {"tensor_parallel": 8, "expert_parallel": 3}, "must divide"),
        ("vllm", {"tensor_parallel": 8, "nnodes": 2}, "needs the leader's address"),
        ("vllm", {"tensor_parallel": 3, "nnodes": 2, "leader_address": LEADER}, "do not split evenly"),
        ("vllm", {"node_rank": "1; rm -rf /"}, "neither a number"),
    ],
)
def test_layouts_an_engine_cannot_express_are_refused(
    engine: str, changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(UnsupportedCandidate, match=reason):
        serve_args(_config(engine, **changes))


def test_what_each_engine_can_split_by_is_public_for_the_planner() -> None:
    assert can_split("vllm", "nodes")
    assert can_split("sglang", "expert")
    assert can_split("trtllm", "data")
    assert not can_split("trtllm", "nodes")
    assert not can_split("tgi", "pipeline")
    with pytest.raises(ValueError, match="unknown dimension"):
        can_split("vllm", "context")
