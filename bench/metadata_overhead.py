"""What metadata.install() costs: scheduling time of a train step, stock vs installed, in one process.

  DEV=CPU python bench/metadata_overhead.py [repeats]

Each repeat builds the conv/BatchNorm/linear SGD step, data-parallel on CPU:0 and CPU:1, and schedules it with the
schedule cache emptied (so the scheduler really runs); stock and installed alternate. Prints min and median of each
and the ratio, and the machine.
"""
from __future__ import annotations

import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))


def _time_schedule() -> float:
  import tinygrad.schedule as schedule
  from tinygrad import Tensor

  from tinybounty.validate import metadata
  outs = metadata.small_train_step(("CPU:0", "CPU:1"))
  schedule.schedule_cache.clear()
  st = time.perf_counter()
  Tensor.linear_with_vars(*outs)
  return time.perf_counter() - st


def main() -> None:
  from tinybounty.hardware import machine
  from tinybounty.validate import metadata
  repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
  _time_schedule()  # warm-up: imports, pattern compilation
  stock, installed = [], []
  for _ in range(repeats):
    stock.append(_time_schedule())
    metadata.install()
    installed.append(_time_schedule())
    metadata.uninstall()
  s, i = statistics.median(stock), statistics.median(installed)
  print(f"machine: {machine()}")
  print(f"stock     min {min(stock) * 1e3:7.1f} ms  median {s * 1e3:7.1f} ms")
  print(f"installed min {min(installed) * 1e3:7.1f} ms  median {i * 1e3:7.1f} ms")
  print(f"scheduling time with metadata: {i / s:.2f}x stock (median), {min(installed) / min(stock):.2f}x (min)")


if __name__ == "__main__":
  main()
