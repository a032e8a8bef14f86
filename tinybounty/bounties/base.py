"""The shape of a bounty and of what its check reports."""
from __future__ import annotations

import enum
import pathlib
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from tinybounty.records import Record, latest


class Status(str, enum.Enum):
  PASS = "PASS"                      # correct and at its target
  PARTIAL = "PARTIAL"                # correct but below target: the figure says how far
  FAIL = "FAIL"                      # wrong result or crash
  NEEDS_HARDWARE = "NEEDS-HARDWARE"  # the real target needs absent hardware; the nearest analogue ran
  NOT_BUILT = "NOT-BUILT"            # the capability does not exist yet


@dataclass(frozen=True)
class Result:
  """What one check found: a status, the measured figure with its unit and baseline, and what was run."""
  status: Status
  ran: str
  figure: float | None = None
  unit: str = ""
  baseline: str = ""
  detail: str = ""
  seconds: float = 0.0

  def to_json(self) -> dict:
    return {**asdict(self), "status": self.status.value}

  @staticmethod
  def from_json(d: dict) -> Result:
    return Result(**{**d, "status": Status(d["status"])})


@dataclass(frozen=True)
class Bounty:
  """One tinygrad bounty: its registry id, what delivers it, what its real target needs, and its acceptance check.

  `check(full)` runs something and returns a Result; `full=False` must stay short (a report runs all 23 in minutes).
  """
  id: int
  title: str
  capability: str
  hardware: str
  check: Callable[[bool], Result] = field(repr=False)
  timeout: float = 300.0

  @property
  def key(self) -> str:
    return f"{self.id:02d}"


def not_built(what: str) -> Result:
  return Result(Status.NOT_BUILT, ran=f"nothing: {what} does not exist yet")


def needs_hardware(needs: str, analogue: Result) -> Result:
  """The real target needs hardware that is absent: show the nearest analogue that ran here (a failing one is a FAIL)."""
  if analogue.status is Status.FAIL: return analogue
  detail = f"needs {needs}; analogue here: {analogue.status.value}" + (f"; {analogue.detail}" if analogue.detail else "")
  return Result(Status.NEEDS_HARDWARE, ran=analogue.ran, figure=analogue.figure, unit=analogue.unit,
                baseline=analogue.baseline, detail=detail)


def from_ratio(ran: str, ratio: float, target: float, unit: str, baseline: str, detail: str = "") -> Result:
  """PASS at or above target, PARTIAL below it: the figure says how far."""
  return Result(Status.PASS if ratio >= target else Status.PARTIAL, ran=ran, figure=ratio, unit=unit,
                baseline=baseline, detail=detail or f"target {target:g} {unit}")


_ANNOTATION = re.compile(r"\s*\([^()]*\b(?:shared|load)\b[^()]*\)")


def same_machine(recorded: str, here: str) -> bool:
  """Whether a record's machine is this one: its name with the load notes ("(shared, load 13-28)") taken off."""
  return _ANNOTATION.sub("", recorded).strip() == _ANNOTATION.sub("", here).strip()


def quoted(rec: Record) -> str:
  """A record as a check quotes it: bench, date and machine first, then the figure."""
  return f"{rec.bench} {rec.date} on {rec.machine}: {rec.figure}"


def with_records(result: Result, benches: tuple[str, ...], path: pathlib.Path | None = None) -> Result:
  """`result` with the newest record of each bench (a GPU run's figure, say) quoted in its detail, labelled with its date
  and machine. A quoted record informs; it never changes the status the check earned here."""
  recs = [quoted(r) for b in benches if (r := latest(b, *([path] if path else []))) is not None]
  if not recs: return result
  return replace(result, detail="; ".join([result.detail, *(f"record {q}" for q in recs)] if result.detail else recs))
