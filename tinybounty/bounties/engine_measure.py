"""Measuring the engine: upstream's 'model rewrite' quantity, stock vs ours in one process (bench/ and the registry checks).

Upstream's criterion (tinygrad issue 4878, test/external/external_benchmark_schedule.py) is the 'model rewrite' time:
weights replaced by `Tensor.empty`, the output's schedule built (here `schedule_linear`), then every distinct kernel AST
lowered with `full_rewrite_to_sink` for the default device's renderer. We time that phase ("rewrite") and schedule +
rewrite ("total") in CPU seconds of this process (the machine is shared: wall time shows other jobs' load), build the
model afresh for every run, clear tinygrad's schedule cache and our memo before each, and alternate which engine runs
first. The ratio is stock / ours of the medians.
"""
from __future__ import annotations

import cProfile
import functools
import gc
import re
import statistics
import time
from dataclasses import dataclass
from typing import Callable

from tinygrad import Device, Tensor, dtypes, nn
from tinygrad.codegen import full_rewrite_to_sink
from tinygrad.schedule import schedule_cache
from tinygrad.uop.ops import Ops
from tqdm import trange

import tinybounty.engine as engine
from tinybounty.bounties.base import Result, Status, quoted, same_machine
from tinybounty.engine.rewrite import clear_memo
from tinybounty.models.gpt2 import GPT2, GPT2Config
from tinybounty.models.resnet import ResNet
from tinybounty.records import Record, latest


def resnet50_output(batch: int, width: int = 64, size: int = 224) -> Tensor:
  """ResNet-50 logits for an empty batch, with empty weights (width 64 at 224x224 is the real network)."""
  model = ResNet(50, 1000, width)
  for p in nn.state.get_parameters(model): p.replace(Tensor.empty(p.shape))
  return model(Tensor.empty(batch, 3, size, size))


def gpt2_output(batch: int, cfg: GPT2Config | None = None) -> Tensor:
  """GPT-2 (small unless cfg says otherwise) logits for an empty batch of up to 64 tokens, with empty weights."""
  model = GPT2(cfg := cfg or GPT2Config.small())
  for p in nn.state.get_parameters(model): p.replace(Tensor.empty(p.shape, dtype=p.dtype))
  return model(Tensor.empty(batch, min(64, cfg.max_seq_len), dtype=dtypes.int32), use_cache=False)


MODELS = {"resnet50": (resnet50_output, 64), "gpt2": (gpt2_output, 4)}


@dataclass(frozen=True)
class Run:
  schedule: float
  rewrite: float
  kernels: int
  outputs: tuple[bytes, ...]  # the key of every rewritten kernel, to check stock and ours agree

  @property
  def total(self) -> float: return self.schedule + self.rewrite


def run_once(build: Callable[[], Tensor], profile: cProfile.Profile | None = None) -> Run:
  """Schedule then rewrite every distinct kernel of one model built afresh, with whatever engine is installed now."""
  out = build()
  schedule_cache.clear()
  clear_memo()
  gc.collect()
  st = time.process_time()
  linear = out.schedule_linear()
  sched = time.process_time() - st
  asts = list({c.src[0].key: c.src[0] for c in linear.src if c.src[0].op is Ops.SINK}.values())
  renderer = Device[Device.DEFAULT].renderer
  if profile is not None: profile.enable()
  st = time.process_time()
  sinks = [full_rewrite_to_sink(ast, renderer) for ast in asts]
  rewrite = time.process_time() - st
  if profile is not None: profile.disable()
  return Run(sched, rewrite, len(asts), tuple(s.key for s in sinks))


def stats(xs: list[float]) -> str: return f"min {min(xs):6.2f} s  median {statistics.median(xs):6.2f} s"


def compare(build: Callable[[], Tensor], repeats: int, desc: str = "", show: bool = True) -> dict[str, float]:
  """Alternating stock/ours runs; returns medians, the stock/ours ratios of rewrite and total time, and whether all outputs agree."""
  runs: dict[bool, list[Run]] = {False: [], True: []}
  kinds = set()
  for i in trange(repeats, desc=desc, leave=False, disable=not show):
    for on in ((False, True) if i % 2 == 0 else (True, False)):
      with engine.enabled(on):
        runs[on].append(run_once(build))
        if on: kinds.add(engine.engine_kind())
  med = {f"{k}_{'ours' if on else 'stock'}": statistics.median(getattr(r, k) for r in runs[on]) for on in runs for k in ("rewrite", "total")}
  kind = describe_engine(kinds.pop())
  if show: print(f"  ours = {kind}")
  for on, label in ((False, "stock"), (True, "ours ")):
    rs = runs[on]
    if show: print(f"  {label}  rewrite {stats([r.rewrite for r in rs])}   total {stats([r.total for r in rs])}  ({rs[0].kernels} kernels)")
  ratio = {"rewrite_ratio": med["rewrite_stock"] / med["rewrite_ours"], "total_ratio": med["total_stock"] / med["total_ours"]}
  if show: print(f"  ratio (stock/ours, medians): rewrite {ratio['rewrite_ratio']:.2f}x  total {ratio['total_ratio']:.2f}x")
  identical = len({r.outputs for rs in runs.values() for r in rs}) == 1
  if show and not identical: print("  OUTPUTS DIFFER between stock and ours")
  return {**med, **ratio, "identical": identical, "engine": kind}


def describe_engine(kind: str | None) -> str:
  """Which of our engines ran, in words (with the reason when the C loop could not be built)."""
  if kind == "native": return "the C loop (tinybounty/engine/loop.c)"
  return f"the pure-Python loop (C loop unavailable: {engine.native_error()})" if kind == "python" else "stock (our engine was not installed)"


def check_speedup(target: float, full: bool) -> Result:
  """Registry check of bounties 06-08 (their criterion: `verdict`), measured here and quoted from docs/benchmarks.md.

  Short: GPT-2 tiny (seconds), plus the newest full-size records (QUOTED, upstream's script among them).
  Full: ResNet-50 batch 64 and GPT-2 small, 5 repeats each (medians).
  """
  from tinybounty.hardware import machine
  cases = {"ResNet-50 bs64": functools.partial(resnet50_output, 64), "GPT-2 small": functools.partial(gpt2_output, 4)} if full else \
          {"GPT-2 tiny": functools.partial(gpt2_output, 2, GPT2Config.tiny())}
  res = {name: _measured(name, build, 5 if full else 1) for name, build in cases.items()}
  ran = ", ".join(f"{n} ({5 if full else 1} run{'s' if full else ''} each way)" for n in res) + \
        f": schedule_linear + full_rewrite_to_sink per kernel, stock vs ours ({next(iter(res.values()))['engine']}) in one process"
  recs = [] if full else [rec for b in QUOTED if (rec := latest(b)) is not None]
  return verdict(target, ran, res, full, recs, machine())


def verdict(target: float, ran: str, measured: dict[str, dict], full: bool, recs: list[Record], here: str) -> Result:
  """Bounties 06-08: upstream's 'model rewrite' time of the full-size models (ResNet-50 bs64, GPT-2 small), stock over ours.

  - FAIL: a rewritten kernel differs from stock's (`identical` false in a measured case), or a quoted ratio cannot be read.
  - PASS: every counted ratio >= target, and at least one full-size ratio counted: measured here (--full) or recorded on
    this machine (a record of another machine is shown, labelled with its date and machine, and not counted).
  - PARTIAL: the smallest counted ratio is below target (the figure), or all are at target but no full-size ratio of
    this machine is among them (the short run's GPT-2 tiny alone is not the bounty's model).
  """
  if bad := [n for n, r in measured.items() if not r["identical"]]: return Result(Status.FAIL, ran=ran, detail=f"rewritten kernels differ: {bad}")
  counted = {n: r["rewrite_ratio"] for n, r in measured.items()}
  detail = "; ".join(f"{n}: rewrite {r['rewrite_ratio']:.2f}x, total {r['total_ratio']:.2f}x (measured here)" for n, r in measured.items())
  elsewhere = []
  for rec in recs:
    if (m := re.match(r"([\d.]+)x", rec.figure)) is None: return Result(Status.FAIL, ran=ran, detail=f"cannot read the ratio of {quoted(rec)}")
    if same_machine(rec.machine, here): counted[f"{rec.bench} ({rec.date}, this machine)"] = float(m.group(1))
    else: elsewhere.append(quoted(rec))
  if recs: ran += "; full-size ratios quoted from docs/benchmarks.md count only when recorded on this machine"
  full_size = full or len(counted) > len(measured)
  detail += "".join(f"; {n}: {r:.2f}x" for n, r in list(counted.items())[len(measured):])
  if elsewhere: detail += "; not counted (another machine): " + "; ".join(elsewhere)
  worst = min(counted.values())
  if worst >= target and not full_size: detail += "; no full-size ratio of this machine: run the check with --full"
  status = Status.PASS if worst >= target and full_size else Status.PARTIAL
  return Result(status, ran=ran, figure=worst, unit="x", baseline="stock tinygrad 0.14.0 rewrite time, same process",
                detail=f"target {target:g}x; {detail}")


_cache: dict[tuple[str, int], dict] = {}
# full-size records quoted by the short checks: our bench's ResNet-50 bs64 and GPT-2 small, and upstream's own script
# (bench/upstream_schedule.py: external_benchmark_schedule.py run unchanged, stock and ours alternating)
QUOTED = ("engine_resnet50", "engine_gpt2", "engine_upstream_resnet50")


def _measured(name: str, build: Callable[[], Tensor], repeats: int) -> dict:
  """One comparison per case and repeat count per process: checks 06, 07 and 08 share it."""
  if (name, repeats) not in _cache: _cache[(name, repeats)] = compare(build, repeats, show=False)
  return _cache[(name, repeats)]
