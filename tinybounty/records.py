"""Benchmark records in docs/benchmarks.md: one markdown table, newest rows win.

Row format: | date | bench | machine | command | figure | baseline |
A report's short checks quote the latest row for a long benchmark instead of rerunning it, and say so.
"""
from __future__ import annotations

import datetime
import pathlib
import sys
from dataclasses import dataclass

COLUMNS = ("date", "bench", "machine", "command", "figure", "baseline")
DEFAULT_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Record:
  date: str
  bench: str
  machine: str
  command: str
  figure: str
  baseline: str


def _cells(line: str) -> list[str]:
  return [c.strip().strip("`") for c in line.strip().strip("|").split("|")]


def read_records(path: pathlib.Path = DEFAULT_PATH) -> list[Record]:
  """Every row of every table whose header is COLUMNS, in file order."""
  if not path.exists(): return []
  rows, in_table = [], False
  for line in path.read_text().splitlines():
    if not line.lstrip().startswith("|"):
      in_table = False
      continue
    cells = _cells(line)
    if tuple(c.lower() for c in cells) == COLUMNS: in_table = True
    elif in_table and len(cells) == len(COLUMNS) and not set(cells[0]) <= set("-: "): rows.append(Record(*cells))
  return rows


def latest(bench: str, path: pathlib.Path = DEFAULT_PATH) -> Record | None:
  """The newest record of one benchmark (by date, later rows winning ties), or None."""
  rows = [r for r in read_records(path) if r.bench == bench]
  return max(reversed(rows), key=lambda r: r.date) if rows else None


def format_row(bench: str, machine: str, command: str, figure: str, baseline: str, date: str | None = None) -> str:
  """A markdown row to append to docs/benchmarks.md."""
  cells = (date or datetime.date.today().isoformat(), bench, machine, f"`{command}`", figure, baseline)
  return "| " + " | ".join(cells) + " |"


def bench_command(script: str, argv: list[str] | None = None) -> str:
  """The command line of a benchmark run: `python SCRIPT` and its arguments (this process's when argv is None)."""
  return " ".join(["python " + script, *(sys.argv[1:] if argv is None else argv)])
