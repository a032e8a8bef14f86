"""Proof that tinygrad frees device buffers: weak references to Buffers die with their Tensors, and a long loop's
memory stays flat. Run as a script (`python -m tinybounty.validate.gc`) it soaks in a fresh process, which is how the
VIZ=1 case is measured (VIZ is read once, at import) and prints one JSON line.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import weakref
from dataclasses import asdict, dataclass
from typing import Callable

from tinygrad import Tensor
from tinygrad.device import Buffer, MultiBuffer
from tinygrad.helpers import GlobalCounters, tqdm


def buffers_of(*tensors: Tensor) -> list[Buffer]:
  """The device Buffers behind realized tensors: one per tensor, one per shard for a multi-device tensor."""
  out: list[Buffer] = []
  for t in tensors:
    b = t.uop.buffer
    out += b.bufs if isinstance(b, MultiBuffer) else [b]
  return out


def watch(*tensors: Tensor) -> list[weakref.ref]:
  """Weak references to the Buffers behind `tensors` (realized), to see whether they are freed later."""
  return [weakref.ref(b) for b in buffers_of(*tensors)]


def alive(refs: list[weakref.ref]) -> int:
  """How many watched Buffers still exist after a full garbage collection."""
  gc.collect()
  return sum(r() is not None for r in refs)


def rss_bytes() -> int:
  """Resident memory of this process."""
  with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def viz_trace_items() -> int:
  """How many records VIZ and the profiler hold: traced rewrites and profile events (they grow while VIZ=1 by design)."""
  from tinygrad.helpers import cpu_events
  from tinygrad.uop.ops import tracked_ctxs
  return sum(len(c) for c in tracked_ctxs) + len(cpu_events) + len(Buffer.profile_events)


@dataclass(frozen=True)
class SoakResult:
  iterations: int
  rss_growth_mb: float        # after warm-up, end minus start
  mem_used_delta: int         # GlobalCounters.mem_used, end minus start (bytes): 0 when every buffer is back
  viz_trace_growth: int       # records VIZ/profiler gained (0 without VIZ)
  viz: bool
  seconds: float


def default_step(n: int = 1 << 18) -> Callable[[], None]:
  """One iteration: a fresh 1 MB buffer computed from a fixed input, an intermediate realized, the result read back."""
  x = Tensor.rand(n).realize()
  def step() -> None:
    y = (x * 2 - 1).contiguous().realize()
    (y.relu() + 1).sum().item()
  return step


def soak(step: Callable[[], None] | None = None, iterations: int = 1000, warmup: int = 20, progress: bool = False) -> SoakResult:
  """Run `step` many times; memory must come back: RSS flat and tinygrad's mem_used at its starting value."""
  from tinygrad.helpers import VIZ
  step = step or default_step()
  for _ in range(warmup): step()
  gc.collect()
  rss0, mem0, viz0, st = rss_bytes(), GlobalCounters.mem_used, viz_trace_items(), time.perf_counter()
  for _ in tqdm(range(iterations), desc="gc soak", disable=not progress): step()
  gc.collect()
  return SoakResult(iterations, (rss_bytes() - rss0) / 2**20, GlobalCounters.mem_used - mem0, viz_trace_items() - viz0,
                    bool(VIZ), time.perf_counter() - st)


if __name__ == "__main__":
  n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
  print(json.dumps(asdict(soak(iterations=n, progress=sys.stderr.isatty()))), flush=True)
