"""Rewrite engine benchmark: stock tinygrad vs tinybounty.engine in one process, several repeats, min and median.

  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py                  # ResNet-50 batch 64 and GPT-2 small, 5 repeats
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model resnet50 --batch 8 --repeats 3
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model resnet50 --profile   # cProfile of our engine's rewrite
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model gpt2 --ablate        # everything but one part, each part

What is timed, and how, is tinybounty.bounties.engine_measure's docstring: upstream's 'model rewrite' quantity (ResNet-50 batch
64, empty weights, schedule_linear, then full_rewrite_to_sink per distinct kernel), in CPU seconds of this process.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import statistics

from tinygrad import Device
from tinygrad.uop.ops import RewriteContext

import tinybounty.engine as engine
from tinybounty.bounties.engine_measure import MODELS, compare, describe_engine, run_once
from tinybounty.engine import native
from tinybounty.engine.hot import put
from tinybounty.engine.rewrite import native_unified_rewrite
from tinybounty.hardware import machine


def profile(build, top: int = 25) -> None:
  pr = cProfile.Profile()
  with engine.enabled(True):
    print(f"  ours = {describe_engine(engine.engine_kind())}")
    run_once(build, pr)
  pstats.Stats(pr).sort_stats("tottime").print_stats(top)


def _without(part: str | None) -> None:
  """Install the whole engine, then take one part out: "C loop" (the Python engine runs), "gc" (GC passes run during
  rewrites), or one of the patched functions (stock's runs)."""
  engine.install(native_loop=part != "C loop")
  if part == "gc": RewriteContext.unified_rewrite = native_unified_rewrite(native.bind()[0])
  elif part not in (None, "C loop"): put(*engine.patches("native")[part][:2], engine.STOCK_OBJECTS[part])


def ablate(build, repeats: int) -> None:
  """Rewrite time of stock, of everything, and of everything but each part, alternating in one process (medians)."""
  with engine.enabled(True):
    if engine.engine_kind() != "native": raise SystemExit(f"--ablate needs the C loop: {engine.native_error()}")
    parts = [p for p in engine.patches("native") if p != "unified_rewrite"]
  configs = {"stock": engine.uninstall, "everything": lambda: _without(None),
             **{f"everything but {p}": functools.partial(_without, p) for p in ["C loop", "gc", *parts]}}
  times: dict[str, list[float]] = {k: [] for k in configs}
  for i in range(repeats):
    for name in (list(configs) if i % 2 == 0 else list(configs)[::-1]):
      configs[name]()
      try: times[name].append(run_once(build).rewrite)
      finally: engine.uninstall()
  base = statistics.median(times["stock"])
  for name, ts in times.items(): print(f"  {name:40s} rewrite median {statistics.median(ts):6.2f} s  {base / statistics.median(ts):.2f}x")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", choices=[*MODELS, "all"], default="all")
  ap.add_argument("--batch", type=int, help="batch size (default: 64 for ResNet-50, 4 for GPT-2)")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--profile", action="store_true", help="cProfile one run of our engine instead of benchmarking")
  ap.add_argument("--ablate", action="store_true", help="time everything but one part of the engine, for each part")
  args = ap.parse_args()
  print(f"machine: {machine()}  device: {Device.DEFAULT}  CPU seconds of this process")
  for m in MODELS if args.model == "all" else [args.model]:
    make, default_batch = MODELS[m]
    build = functools.partial(make, args.batch or default_batch)
    if args.profile: profile(build)
    elif args.ablate: ablate(build, args.repeats)
    else:
      print(f"{m} batch {args.batch or default_batch}, {args.repeats} repeats")
      compare(build, args.repeats, desc=m)


if __name__ == "__main__":
  main()
