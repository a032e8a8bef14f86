"""Bounty 19: CPU graph for clang/LLVM.

Criterion. A graph executor for tinygrad's CPU devices (clang and LLVM) that replays jitted steps with outputs bitwise
equal to stock TinyJit's and at least REQUIRED x faster on the MLP and decode steps (the bounty's goal: GOAL x on the MLP).
- FAIL: outputs differ from stock TinyJit's on clang or LLVM (GPT-2 tiny decode loop), an unreadable record, or a crash.
- PASS: equal, the MLP step measured here >= REQUIRED x, and the GPT-2-small-shaped decode step >= REQUIRED x, measured
  here (--full) or recorded on this machine.
- PARTIAL: equal, but the smaller counted ratio below REQUIRED x (the figure), or the decode ratio not shown on this
  machine (a record of another machine is quoted with its date and machine, never counted; the figure is the MLP's).
"""
import re

from tinybounty.bounties.base import Bounty, Result, Status, quoted, same_machine
from tinybounty.records import Record

REQUIRED, GOAL = 1.5, 3.0  # the bounty's required speedup on the MLP and decode steps, and its goal on the MLP step
DECODE_BENCH = "cpugraph_gpt2_narrow_decode_clang"


def verdict(unequal: str | None, mlp: float, here: str, decode: float | None = None, rec: Record | None = None) -> Result:
  """The status by the criterion above: `unequal` what differed from stock TinyJit (None: all equal), the MLP ratio measured
  here, the decode ratio measured here (--full) or else the newest decode record."""
  if unequal is not None: return Result(Status.FAIL, ran="equality vs stock TinyJit (GPT-2 tiny decode loop)", detail=unequal)
  ran = "outputs bitwise equal to stock TinyJit (GPT-2 tiny decode loop, clang and LLVM); MLP 24x64 b8 step timed here (clang)"
  counted, notes = {"MLP": mlp}, [f"goal {GOAL:g}x on the MLP"]
  if decode is not None:
    counted["decode"], ran = decode, ran + "; GPT-2-small-shaped decode step timed here"
  elif rec is None: notes.append(f"no {DECODE_BENCH} record: decode ratio unshown")
  elif (m := re.match(r"([\d.]+)x", rec.figure)) is None: return Result(Status.FAIL, ran=ran, detail=f"cannot read the ratio of {quoted(rec)}")
  elif same_machine(rec.machine, here): counted["decode"], ran = float(m.group(1)), ran + f"; decode step recorded on this machine ({rec.date})"
  else: notes.append(f"decode not shown on this machine, not counted: {quoted(rec)}")
  worst = min(counted.values())
  status = Status.PASS if worst >= REQUIRED and "decode" in counted else Status.PARTIAL
  detail = ", ".join(f"{k} {v:.2f}x" for k, v in counted.items()) + f"; required {REQUIRED:g}x on the MLP and the decode; " + "; ".join(notes)
  return Result(status, ran=ran, figure=worst, unit="x", baseline="stock TinyJit on the CPU, same run", detail=detail)


def check(full: bool) -> Result:
  """Equality with stock TinyJit on clang and LLVM (GPT-2 tiny decode loop), then the MLP step's speedup, measured here.

  The short version quotes the decode step's ratio from docs/benchmarks.md; --full measures it too.
  """
  from tinygrad.helpers import Context

  from tinybounty import records
  from tinybounty.bounties import cpugraph_measure as cb
  from tinybounty.hardware import machine
  from tinybounty.models.gpt2 import GPT2Config

  cfg = GPT2Config.tiny()
  decode_loop = cb.gpt2_decode(cfg, "gpt2_tiny_decode", start=0, window=cfg.max_seq_len)
  for dev in ("CPU", "CPU:LLVM"):
    with Context(DEV=dev): same, what = cb.equal_outputs(decode_loop, steps=4)
    if not same: return verdict(f"DEV={dev}: {what}", 0.0, machine())
  with Context(DEV="CPU"): mlp = cb.time_workload(cb.mlp(24, 64, 8), iters=10, repeats=3).ratio
  if full:
    with Context(DEV="CPU"): decode = cb.time_workload(cb.gpt2_decode_narrow(), iters=10, repeats=3).ratio
    return verdict(None, mlp, machine(), decode=decode)
  return verdict(None, mlp, machine(), rec=records.latest(DECODE_BENCH))


BOUNTY = Bounty(19, "CPU graph for clang/LLVM", "tinybounty.runtime.cpugraph",
                hardware="CPU", check=check)
