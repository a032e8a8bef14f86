"""Rewrite engine benchmark: stock tinygrad vs tinybounty.engine in one process, several repeats, min and median.

  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py                  # ResNet-50 batch 64 and GPT-2 small, 5 repeats
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model resnet50 --batch 8 --repeats 3
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model resnet50 --profile   # cProfile of our engine's rewrite

Upstream's criterion (tinygrad issue 4878, test/external/external_benchmark_schedule.py) is the 'model rewrite' time:
weights replaced by `Tensor.empty`, the output's schedule built (here `schedule_linear`), then every distinct kernel AST
lowered with `full_rewrite_to_sink` for the default device's renderer. We time that phase ("rewrite") and schedule +
rewrite ("total") in CPU seconds of this process (the machine is shared: wall time shows other jobs' load), build the
model afresh for every run, clear tinygrad's schedule cache and our memo before each, and alternate which engine runs
first. The ratio is stock / ours of the medians.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import time
from dataclasses import dataclass

from tinygrad import Device, Tensor, dtypes, nn
from tinygrad.codegen import full_rewrite_to_sink
from tinygrad.schedule import schedule_cache
from tinygrad.uop.ops import Ops

import tinybounty.engine as engine
from tinybounty.engine.rewrite import clear_memo
from tinybounty.hardware import machine
from tinybounty.models.gpt2 import GPT2, GPT2Config
from tinybounty.models.resnet import ResNet


def resnet50_output(batch: int) -> Tensor:
  model = ResNet(50, 1000, 64)
  for p in nn.state.get_parameters(model): p.replace(Tensor.empty(p.shape))
  return model(Tensor.empty(batch, 3, 224, 224))


def gpt2_output(batch: int) -> Tensor:
  model = GPT2(GPT2Config.small())
  for p in nn.state.get_parameters(model): p.replace(Tensor.empty(p.shape, dtype=p.dtype))
  return model(Tensor.empty(batch, 64, dtype=dtypes.int32), use_cache=False)


MODELS = {"resnet50": (resnet50_output, 64), "gpt2": (gpt2_output, 4)}


@dataclass(frozen=True)
class Run:
  schedule: float
  rewrite: float
  kernels: int

  @property
  def total(self) -> float: return self.schedule + self.rewrite


def run_once(model: str, batch: int, profile: cProfile.Profile | None = None) -> Run:
  """Schedule then rewrite every distinct kernel of one model built afresh, with whatever engine is installed now."""
  out = MODELS[model][0](batch)
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
  for ast in asts: full_rewrite_to_sink(ast, renderer)
  rewrite = time.process_time() - st
  if profile is not None: profile.disable()
  return Run(sched, rewrite, len(asts))


def stats(xs: list[float]) -> str: return f"min {min(xs):6.2f} s  median {statistics.median(xs):6.2f} s"


def bench(model: str, batch: int, repeats: int) -> dict[str, float]:
  """Alternating stock/ours runs; returns medians and the stock/ours ratios of rewrite and total time."""
  runs: dict[bool, list[Run]] = {False: [], True: []}
  from tqdm import trange
  for i in trange(repeats, desc=f"{model} bs{batch}", leave=False):
    for on in ((False, True) if i % 2 == 0 else (True, False)):
      with engine.enabled(on): runs[on].append(run_once(model, batch))
  med = {f"{k}_{'ours' if on else 'stock'}": statistics.median(getattr(r, k) for r in runs[on]) for on in runs for k in ("rewrite", "total")}
  for on, label in ((False, "stock"), (True, "ours ")):
    print(f"  {label}  rewrite {stats([r.rewrite for r in runs[on]])}   total {stats([r.total for r in runs[on]])}  ({runs[on][0].kernels} kernels)")
  ratio = {"rewrite_ratio": med["rewrite_stock"] / med["rewrite_ours"], "total_ratio": med["total_stock"] / med["total_ours"]}
  print(f"  ratio (stock/ours, medians): rewrite {ratio['rewrite_ratio']:.2f}x  total {ratio['total_ratio']:.2f}x")
  return {**med, **ratio}


def profile(model: str, batch: int, top: int = 25) -> None:
  pr = cProfile.Profile()
  with engine.enabled(True): run_once(model, batch, pr)
  pstats.Stats(pr).sort_stats("tottime").print_stats(top)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", choices=[*MODELS, "all"], default="all")
  ap.add_argument("--batch", type=int, help="batch size (default: 64 for ResNet-50, 4 for GPT-2)")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--profile", action="store_true", help="cProfile one run of our engine instead of benchmarking")
  args = ap.parse_args()
  print(f"machine: {machine()}  device: {Device.DEFAULT}  CPU seconds of this process")
  for m in MODELS if args.model == "all" else [args.model]:
    batch = args.batch or MODELS[m][1]
    if args.profile: profile(m, batch)
    else:
      print(f"{m} batch {batch}, {args.repeats} repeats")
      bench(m, batch, args.repeats)


if __name__ == "__main__":
  main()
