"""Runs checks: in this process, or each in its own (tinygrad's global state and installed patches stay apart)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

from tinybounty.bounties.base import Bounty, Result, Status

MARKER = "TINYBOUNTY-RESULT:"


def run_check(b: Bounty, full: bool = False) -> Result:
  """Run one check here; an exception becomes a FAIL that names the error, never a crash of the caller."""
  st = time.perf_counter()
  try:
    res = b.check(full)
    if not isinstance(res, Result): raise TypeError(f"check {b.key} returned {type(res).__name__}, not Result")
  except Exception as e:  # noqa: BLE001 - a failing check is a result, not a crash
    last = traceback.extract_tb(e.__traceback__)[-1]
    res = Result(Status.FAIL, ran=f"check {b.key} raised", detail=f"{type(e).__name__}: {e} ({last.filename}:{last.lineno})")
  return Result(**{**res.__dict__, "seconds": round(time.perf_counter() - st, 2)})


def run_isolated(b: Bounty, full: bool = False) -> Result:
  """Run one check in a fresh Python process, bounded by the bounty's timeout."""
  cmd = [sys.executable, "-m", "tinybounty.bounties.runner", b.key] + (["--full"] if full else [])
  st = time.perf_counter()
  try:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=b.timeout * (4 if full else 1), env=os.environ.copy())
  except subprocess.TimeoutExpired:
    return Result(Status.FAIL, ran=f"check {b.key}", detail=f"timed out after {b.timeout:.0f} s",
                  seconds=round(time.perf_counter() - st, 2))
  for line in reversed(p.stdout.splitlines()):
    if line.startswith(MARKER): return Result.from_json(json.loads(line[len(MARKER):]))
  tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
  return Result(Status.FAIL, ran=f"check {b.key}", detail=f"exit {p.returncode}: " + " | ".join(tail),
                seconds=round(time.perf_counter() - st, 2))


if __name__ == "__main__":
  from tinybounty.bounties.registry import get_bounty
  result = run_check(get_bounty(sys.argv[1]), full="--full" in sys.argv)
  print(MARKER + json.dumps(result.to_json()), flush=True)
