"""Errors a benchmark raises. The Celery side catches `BenchmarkError` and records `str(exc)` on the run."""

from __future__ import annotations

from typing import Any


class BenchmarkError(Exception):
    """Base of every error a benchmark run raises on purpose.

    `partial_result` is the result.json dict as far as it got (levels finished before the failure), set by
    `run_benchmark` on the way out; None when nothing was measured yet.
    """

    partial_result: dict[str, Any] | None = None


class InvalidSpec(BenchmarkError, ValueError):
    """The request cannot be run as asked (unknown engine, bad lengths, missing model...)."""


class EngineError(BenchmarkError):
    """The engine failed; `log_tail` holds its last log lines so the failure is readable without the host."""

    def __init__(self, message: str, *, log_tail: str = "", exit_code: int | None = None) -> None:
        self.log_tail = log_tail
        self.exit_code = exit_code
        full = message if not log_tail else f"{message}\n--- last engine log lines ---\n{log_tail}"
        super().__init__(full)


class EngineStartError(EngineError):
    """The engine exited, or never became healthy, while starting."""


class EngineCrashed(EngineError):
    """The engine exited while requests were running (out of memory, assertion, killed)."""


class BenchmarkCancelled(BenchmarkError):
    """`should_cancel()` returned True; `partial_result` holds the levels finished before that."""

    def __init__(self, message: str, *, partial_result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial_result = partial_result
