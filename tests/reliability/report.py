"""The checker's verdict on a scenario: what was lost, run twice, run early, dead-lettered.

Lost: enqueued (its enqueue returned) and neither completed nor dead-lettered. A duplicate: a
run of the same job and attempt completed more than once. Early: a run started before its
job's `run_at`. A scenario may add what else it counted (`notes`). Reports are printed at the
end of the session (conftest.py) and, with PULSARJOBS_RELIABILITY_REPORT naming a file,
appended there as JSON lines.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from tests.reliability.recorder import RunRecord

REPORT_VARIABLE = "PULSARJOBS_RELIABILITY_REPORT"
REPORTS: list[Report] = []  # this session's, for the summary table


@dataclass(frozen=True)
class Report:
    scenario: str
    size: str  # "short" or "long"
    jobs: int
    lost: int
    duplicates: int
    early: int
    dead_lettered: int
    seconds: float
    notes: str = ""  # what else the scenario counted, in words
    lost_ids: list[str] = field(default_factory=list, repr=False)

    def line(self) -> str:
        return (f"{self.scenario} ({self.size}): {self.jobs:,} jobs, lost {self.lost}, "
                f"duplicates {self.duplicates}, early {self.early}, "
                f"dead-lettered {self.dead_lettered}, {self.seconds:.0f} s"
                + (f"; {self.notes}" if self.notes else ""))  # fmt: skip


def check(
    scenario: str,
    size: str,
    enqueued: Iterable[str],
    runs: Iterable[RunRecord],
    dead_letters: Mapping[str, str],
    seconds: float,
    notes: str = "",
) -> Report:
    """The report of a scenario, kept for the session's summary. `dead_letters`: reason by job
    id; `notes`: what else it counted, for its line."""
    expected = set(enqueued)
    runs = list(runs)
    completed = {run.job_id for run in runs}
    lost = sorted(expected - completed - set(dead_letters))
    per_attempt = Counter((run.job_id, run.attempt) for run in runs)
    report = Report(
        scenario=scenario,
        size=size,
        jobs=len(expected),
        lost=len(lost),
        duplicates=sum(count - 1 for count in per_attempt.values()),
        early=sum(1 for run in runs if run.run_at is not None and run.started < run.run_at),
        dead_lettered=len(set(dead_letters) & expected),
        seconds=seconds,
        notes=notes,
        lost_ids=lost[:20],
    )
    REPORTS.append(report)
    if path := os.environ.get(REPORT_VARIABLE):
        with open(path, "a") as out:
            out.write(json.dumps({k: v for k, v in asdict(report).items() if k != "lost_ids"}))
            out.write("\n")
    print(report.line())
    return report
