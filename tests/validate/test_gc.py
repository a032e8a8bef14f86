import json
import os
import subprocess
import sys

import pytest
from tinygrad import Tensor, TinyJit

from tinybounty.validate.gc import alive, watch

MB64 = 16 * 2**20  # floats: a 64 MB tensor


def test_eager_buffers_die_with_their_tensors():
  a = Tensor.rand(1 << 16).realize()
  b = (a * 2).contiguous().realize()
  c = (b + a).relu().contiguous().realize()
  refs = watch(a, b, c)
  assert alive(refs) == 3
  del b
  assert alive(refs) == 3 - 1
  del a, c
  assert alive(refs) == 0


def test_large_buffers_are_freed_every_iteration():
  from tinygrad.helpers import GlobalCounters
  start = GlobalCounters.mem_used
  refs = []
  for _ in range(3):
    x = (Tensor.empty(MB64) + 1).realize()  # 64 MB each
    assert GlobalCounters.mem_used >= start + MB64 * 4
    refs += watch(x)
    del x
  assert alive(refs) == 0 and GlobalCounters.mem_used == start


def test_jit_outputs_and_captured_buffers_die_with_the_jit():
  @TinyJit
  def f(x: Tensor) -> Tensor: return ((x * 2).contiguous() + 1).sum(0).realize()
  refs = []
  for _ in range(4):
    x = Tensor.rand(64, 64).realize()
    out = f(x)
    refs += watch(x, out)
  assert f.captured is not None
  inputs = refs[0::2]
  del x
  assert alive(inputs) == 0  # the jit does not keep its inputs
  del out, f
  assert alive(refs) == 0  # nor, once it is gone, its outputs


def test_exception_inside_a_jitted_function_leaks_nothing():
  @TinyJit
  def f(x: Tensor) -> Tensor:
    y = (x + 1).contiguous().realize()
    if x.shape[0] > 8: raise ValueError("too big")
    return y
  refs = []
  for n in (4, 4, 16):
    x = Tensor.rand(n).realize()
    refs += watch(x)
    try:
      f(x)
    except ValueError:
      pass
  del x, f
  assert alive(refs) == 0


def test_multi_device_shards_are_freed(two_cpus):
  x = Tensor.rand(8, 4).shard(two_cpus, axis=0).realize()
  y = (x * 2).contiguous().realize()
  refs = watch(x, y)
  assert len(refs) == 4 and alive(refs) == 4
  del x, y
  assert alive(refs) == 0


def _soak(iterations: int, viz: bool) -> dict:
  env = {**os.environ, "DEV": "CPU", "VIZ": "1" if viz else "0"}
  p = subprocess.run([sys.executable, "-m", "tinybounty.validate.gc", str(iterations)], capture_output=True, text=True, env=env,
                     stdin=subprocess.DEVNULL, timeout=600)
  assert p.returncode == 0, p.stderr[-2000:]
  return json.loads(next(line for line in p.stdout.splitlines() if line.startswith("{")))


def test_soak_1000_iterations_memory_stays_flat():
  r = _soak(1000, viz=False)
  assert r["iterations"] == 1000 and r["mem_used_delta"] == 0 and r["rss_growth_mb"] < 5, r


def test_viz_frees_buffers_and_only_its_trace_grows():
  r = _soak(50, viz=True)
  assert r["viz"] and r["mem_used_delta"] == 0, r  # every device buffer came back under VIZ=1
  assert r["viz_trace_growth"] > 0  # the trace itself grows by design; docs/correctness.md reports how fast
  # and the process's memory grows by the trace only: each iteration makes two 1 MB buffers (default_step), so a leak of
  # either is >= 1 MB per iteration, where the trace's records cost ~0.1 MB (4.9 MB over 50, 2026-12-05, AMD EPYC)
  assert r["rss_growth_mb"] / r["iterations"] < 0.5, r


@pytest.mark.parametrize("n", [1 << 10])
def test_watch_counts_each_buffer(n):
  t = Tensor.rand(n).realize()
  assert alive(watch(t)) == 1
