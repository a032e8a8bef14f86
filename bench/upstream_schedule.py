"""Upstream's criterion itself: tinygrad's test/external/external_benchmark_schedule.py ('model rewrite': ResNet-50 batch
64, empty weights, schedule_linear, full_rewrite_to_sink per distinct kernel), run unchanged in this process, stock and
tinybounty.engine alternating, several repeats, medians.

  mkdir -p ext/tinygrad && git -C /path/to/tinygrad archive HEAD test/external/external_benchmark_schedule.py \\
      extra/models/resnet.py | tar -x -C ext/tinygrad          # or a clone of github.com/tinygrad/tinygrad in ext/tinygrad
  PYTHONPATH=. DEV=CPU python bench/upstream_schedule.py --repeats 5

The script runs with runpy as __main__, its `extra` package found under --upstream (appended to sys.path, so the
installed tinygrad 0.14.0 is the one it imports). Its own Timing blocks print as upstream prints them; each block is also
recorded in wall seconds and in CPU seconds of this process (tinygrad.helpers.Timing is subclassed for the run: the
machine is shared, so CPU seconds are the figure). LINEARIZE=0 is set, since linearize and verify come after the
criterion. Before every run tinygrad's schedule cache and our memo are cleared and garbage collected.
"""
from __future__ import annotations

import argparse
import gc
import os
import runpy
import statistics
import sys
import time
from pathlib import Path

REWRITE = "***** model rewrite in"


def run_script(script: Path, records: dict[str, tuple[float, float]]) -> None:
  """One run of upstream's script as __main__, with its Timing blocks recorded into records[prefix] = (wall s, CPU s)."""
  import tinygrad.helpers as helpers
  from tinygrad.schedule import schedule_cache

  from tinybounty.engine.rewrite import clear_memo
  stock_timing = helpers.Timing

  class RecordingTiming(stock_timing):
    def __enter__(self):
      self.cpu = time.process_time()
      return super().__enter__()

    def __exit__(self, *exc):
      super().__exit__(*exc)
      records[self.prefix.strip()] = (self.et * 1e-9, time.process_time() - self.cpu)

  schedule_cache.clear()
  clear_memo()
  gc.collect()
  helpers.Timing = RecordingTiming
  try: runpy.run_path(str(script), run_name="__main__")
  finally: helpers.Timing = stock_timing


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--upstream", type=Path, default=Path("ext/tinygrad"), help="a tinygrad checkout with test/external and extra/models")
  ap.add_argument("--repeats", type=int, default=5)
  args = ap.parse_args()
  script = args.upstream / "test" / "external" / "external_benchmark_schedule.py"
  if not script.exists() or not (args.upstream / "extra" / "models" / "resnet.py").exists():
    raise SystemExit(f"{script} or extra/models/resnet.py missing under {args.upstream}: fetch them first (see this file's docstring)")
  os.environ["LINEARIZE"] = "0"
  sys.path.append(str(args.upstream.resolve()))
  import tinybounty.engine as engine
  from tinybounty.bounties.engine_measure import describe_engine
  from tinybounty.hardware import machine
  print(f"machine: {machine()}  upstream script: {script}")
  rewrite: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
  kinds = set()
  for i in range(args.repeats):
    for on in ((False, True) if i % 2 == 0 else (True, False)):
      records: dict[str, tuple[float, float]] = {}
      with engine.enabled(on):
        if on: kinds.add(engine.engine_kind())
        run_script(script, records)
      rewrite[on].append(records[REWRITE])
      print(f"  run {i + 1} {'ours ' if on else 'stock'}: model rewrite {records[REWRITE][0]:6.2f} s wall, {records[REWRITE][1]:6.2f} s CPU")
  print(f"ours = {describe_engine(kinds.pop())}")
  med = {on: [statistics.median(r[k] for r in rewrite[on]) for k in (0, 1)] for on in rewrite}
  for on, label in ((False, "stock"), (True, "ours ")):
    print(f"  {label} model rewrite median {med[on][1]:6.2f} s CPU (min {min(r[1] for r in rewrite[on]):6.2f}), {med[on][0]:6.2f} s wall")
  print(f"  ratio (stock/ours, medians): {med[False][1] / med[True][1]:.2f}x CPU, {med[False][0] / med[True][0]:.2f}x wall")


if __name__ == "__main__":
  main()
