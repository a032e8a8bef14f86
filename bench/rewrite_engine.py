"""Rewrite engine benchmark: stock tinygrad vs tinybounty.engine in one process, several repeats, min and median.

  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py                  # ResNet-50 batch 64 and GPT-2 small, 5 repeats
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model resnet50 --batch 8 --repeats 3
  PYTHONPATH=. DEV=CPU python bench/rewrite_engine.py --model resnet50 --profile   # cProfile of our engine's rewrite

What is timed, and how, is tinybounty.engine.measure's docstring: upstream's 'model rewrite' quantity (ResNet-50 batch
64, empty weights, schedule_linear, then full_rewrite_to_sink per distinct kernel), in CPU seconds of this process.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import pstats

from tinygrad import Device

import tinybounty.engine as engine
from tinybounty.engine.measure import MODELS, compare, run_once
from tinybounty.hardware import machine


def profile(build, top: int = 25) -> None:
  pr = cProfile.Profile()
  with engine.enabled(True): run_once(build, pr)
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
    make, default_batch = MODELS[m]
    build = functools.partial(make, args.batch or default_batch)
    if args.profile: profile(build)
    else:
      print(f"{m} batch {args.batch or default_batch}, {args.repeats} repeats")
      compare(build, args.repeats, desc=m)


if __name__ == "__main__":
  main()
