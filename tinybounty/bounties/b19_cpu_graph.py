"""Bounty 19: CPU graph for clang/LLVM."""
from tinybounty.bounties.base import Bounty, Result, Status, from_ratio

REQUIRED, GOAL = 1.5, 3.0  # the bounty's required speedup on the MLP and decode steps, and its goal on the MLP step
DECODE_BENCH = "cpugraph_gpt2_narrow_decode_clang"


def check(full: bool) -> Result:
  """Equality with stock TinyJit on clang and LLVM (GPT-2 tiny decode loop), then the MLP step's speedup, measured here.

  The short version quotes the decode step's ratio from docs/benchmarks.md; --full measures it too.
  """
  from tinygrad.helpers import Context

  from tinybounty import records
  from tinybounty.bounties import cpugraph_measure as cb
  from tinybounty.models.gpt2 import GPT2Config

  cfg = GPT2Config.tiny()
  decode_loop = cb.gpt2_decode(cfg, "gpt2_tiny_decode", start=0, window=cfg.max_seq_len)
  for dev in ("CPU", "CPU:LLVM"):
    with Context(DEV=dev): same, what = cb.equal_outputs(decode_loop, steps=4)
    if not same: return Result(Status.FAIL, ran=f"equality vs stock TinyJit on DEV={dev}", detail=what)

  with Context(DEV="CPU"): mlp = cb.time_workload(cb.mlp(24, 64, 8), iters=10, repeats=3)
  if full:
    with Context(DEV="CPU"): decode_ratio, decode_src = cb.time_workload(cb.gpt2_decode_narrow(), iters=10, repeats=3).ratio, "measured now"
  elif (rec := records.latest(DECODE_BENCH)) is not None: decode_ratio, decode_src = float(rec.figure.split("x")[0]), f"quoted from {rec.date}"
  else: return Result(Status.PARTIAL, ran="equality + MLP step", figure=mlp.ratio, unit="x", detail=f"no {DECODE_BENCH} record yet")

  ran = ("outputs bitwise equal to stock TinyJit (GPT-2 tiny decode loop, clang and LLVM); MLP 24x64 b8 step timed here (clang); "
         f"GPT-2-small-shaped decode step {decode_src};")
  detail = f"MLP {mlp.ratio:.2f}x (goal {GOAL:g}x), decode {decode_ratio:.2f}x; required {REQUIRED:g}x on both"
  return from_ratio(ran, min(mlp.ratio, decode_ratio), REQUIRED, "x", "stock TinyJit on the CPU, same run", detail)


BOUNTY = Bounty(19, "CPU graph for clang/LLVM", "tinybounty.runtime.cpugraph",
                hardware="CPU", check=check)
