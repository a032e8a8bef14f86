"""`tinybounty report`: run every check, print a table, write JSON."""
from __future__ import annotations

import datetime
import json
import pathlib
import sys
from typing import Callable, Iterable

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from tinybounty import hardware
from tinybounty.bounties.base import Bounty, Result, Status
from tinybounty.bounties.runner import run_check, run_isolated

COLORS = {Status.PASS: "green", Status.PARTIAL: "yellow", Status.FAIL: "red", Status.NEEDS_HARDWARE: "cyan",
          Status.NOT_BUILT: "dim"}
Row = tuple[Bounty, Result]


def run_report(bounties: Iterable[Bounty], full: bool = False, isolate: bool = True, progress: bool = True) -> list[Row]:
  """Run each check (in its own process unless isolate=False); a check that raises is a FAIL and the report goes on."""
  bounties = list(bounties)
  runner: Callable[[Bounty, bool], Result] = run_isolated if isolate else run_check
  rows = []
  with tqdm(bounties, desc="checks", unit="check", disable=not progress) as bar:
    for b in bar:
      bar.set_postfix_str(f"{b.key} {b.title[:40]}")
      rows.append((b, runner(b, full)))
  return rows


def figure_text(r: Result) -> str:
  if r.figure is None: return ""
  return f"{r.figure:.4g} {r.unit}".strip() + (f" (vs {r.baseline})" if r.baseline else "")


def render_table(rows: list[Row], console: Console | None = None) -> None:
  t = Table(title=f"tinygrad bounties on {hardware.machine()} (DEV={hardware.tinygrad_device()})", show_lines=False)
  for col in ("id", "bounty", "status", "figure", "what ran", "needs"): t.add_column(col, overflow="fold")
  for b, r in rows:
    ran = r.ran + (f" [dim]{r.detail}[/dim]" if r.detail else "")
    t.add_row(b.key, b.title, f"[{COLORS[r.status]}]{r.status.value}[/]", figure_text(r), ran, b.hardware)
  (console or Console(width=None if sys.stdout.isatty() else 180)).print(t)


def to_json(rows: list[Row]) -> dict:
  return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "machine": hardware.machine(), "device": hardware.tinygrad_device(),
          "bounties": [{"id": b.key, "title": b.title, "capability": b.capability, "hardware": b.hardware,
                        **r.to_json()} for b, r in rows]}


def write_json(rows: list[Row], path: str | pathlib.Path) -> None:
  """Write atomically: a half-written report never replaces a good one."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(to_json(rows), indent=2) + "\n")
  tmp.replace(path)


def read_json(path: str | pathlib.Path) -> list[tuple[str, Result]]:
  return [(d["id"], Result.from_json({k: d[k] for k in Result.__dataclass_fields__}))
          for d in json.loads(pathlib.Path(path).read_text())["bounties"]]


def exit_code(rows: list[Row]) -> int:
  """0 only when no check FAILs."""
  return int(any(r.status is Status.FAIL for _, r in rows))
