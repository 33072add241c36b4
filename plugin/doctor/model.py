"""What `pymacvlan doctor` reports: checks, each with a verdict, what was found and what to do.

The daemon answers `POST /pymacvlan/v1/doctor` with a `DoctorReport` as JSON; the command line
reads it back (or builds it in-process when no daemon answers) and prints it. Plain values only;
field names are stable (scripts read `--json`); unknown fields are ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_VERSION = 1

Verdict = Literal["ok", "warning", "problem", "skipped"]
VERDICTS: tuple[Verdict, ...] = ("ok", "warning", "problem", "skipped")
# Where the checks ran: in the daemon (its privileges, its network namespace), or in the command
# line's own process because no daemon answered.
Where = Literal["daemon", "in-process"]

EXIT_OK = 0  # every check ok, skipped or a warning
EXIT_PROBLEM = 1  # at least one problem (or the checks could not be run at all)
EXIT_USAGE = 2


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Check(_Model):
    name: str  # stable: "parent-carrier", "child-mac", ... (docs/driver.md lists them)
    subject: str  # what was checked: "parent eth0", "network 0123456789ab", "state"
    verdict: Verdict
    found: str  # what was found, one or a few sentences
    todo: str = ""  # what to do about it; "" when nothing
    networks: list[str] = Field(default_factory=list)  # ids of the networks it concerns


class DoctorReport(_Model):
    version: int = REPORT_VERSION
    where: Where
    generated_at: float
    state_dir: str | None = None
    checks: list[Check] = Field(default_factory=list)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for c in self.checks if c.verdict == verdict)

    @property
    def exit_status(self) -> int:
        return EXIT_PROBLEM if self.count("problem") else EXIT_OK
