"""The planned hourly replica curve as KEDA cron windows.

KEDA turns every trigger into an HPA metric and the HPA follows the largest, so each run of equal hours above
the warm-standby floor becomes one cron trigger asking for that many replicas. Overlaps are therefore safe,
which lets every window start early by the warm start time: replicas are ready on the hour, not after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HOURS_PER_DAY = 24
MINUTES_PER_DAY = 24 * 60
SCHEDULE_TIMEZONE = "Etc/UTC"  # the workload's traffic curve is in UTC hours


@dataclass(frozen=True)
class ReplicaWindow:
    start_hour: int  # first hour of the run
    hours: int  # length of the run; the window ends at start_hour + hours (mod 24)
    replicas: int

    @property
    def end_hour(self) -> int:
        return (self.start_hour + self.hours) % HOURS_PER_DAY

    def cron_start(self, lead_min: int) -> str:
        # The lead never reaches back past the gap before the window, or the window would look inverted.
        lead = max(0, min(lead_min, (HOURS_PER_DAY - self.hours) * 60 - 5))
        minute_of_day = (self.start_hour * 60 - lead) % MINUTES_PER_DAY
        return f"{minute_of_day % 60} {minute_of_day // 60} * * *"

    def cron_end(self) -> str:
        return f"0 {self.end_hour} * * *"


def floor_replicas(replicas_by_hour: Sequence[int], min_replicas: int) -> int:
    """The always-on warm standby: the operator's minimum, or the quietest hour if the plan needs more."""
    return max(min_replicas, min(replicas_by_hour))


def peak_replicas(replicas_by_hour: Sequence[int], min_replicas: int) -> int:
    return max(min_replicas, max(replicas_by_hour))


def replica_windows(replicas_by_hour: Sequence[int], floor: int) -> list[ReplicaWindow]:
    """Runs of consecutive hours with equal replicas above `floor`, joined across midnight, by start hour."""
    values = list(replicas_by_hour)
    if len(values) != HOURS_PER_DAY:
        raise ValueError(f"need {HOURS_PER_DAY} hourly values, got {len(values)}")
    if len(set(values)) == 1:
        return []
    # Start scanning at an hour that begins a run, so a run spanning midnight is read whole.
    origin = next(h for h in range(HOURS_PER_DAY) if values[h] != values[h - 1])
    windows = []
    run_start, run_length = origin, 0
    for offset in range(HOURS_PER_DAY):
        hour = (origin + offset) % HOURS_PER_DAY
        if run_length and values[hour] != values[run_start]:
            windows.append(ReplicaWindow(run_start, run_length, values[run_start]))
            run_start, run_length = hour, 0
        run_length += 1
    windows.append(ReplicaWindow(run_start, run_length, values[run_start]))
    return sorted((w for w in windows if w.replicas > floor), key=lambda w: w.start_hour)
