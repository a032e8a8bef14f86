"""Bounty 15: buffer freeing on CPU shown in VIZ."""
from tinybounty.bounties.base import Bounty, Result, Status

RSS_LIMIT_MB = 5.0


def _soak(iterations: int, viz: bool) -> dict:
  import json
  import os
  import subprocess
  import sys
  env = {**os.environ, "DEV": "CPU", "VIZ": "1" if viz else "0"}
  p = subprocess.run([sys.executable, "-m", "tinybounty.validate.gc", str(iterations)], capture_output=True, text=True, env=env,
                     stdin=subprocess.DEVNULL, timeout=900)
  if p.returncode != 0: raise RuntimeError(f"soak failed: {p.stderr.strip().splitlines()[-1:]}")
  return json.loads(next(line for line in p.stdout.splitlines() if line.startswith("{")))


def _weakrefs_die() -> bool:
  from tinygrad import Tensor, TinyJit

  from tinybounty.validate.gc import alive, watch
  jit = TinyJit(lambda x: (x * 2 + 1).contiguous().realize())
  refs = []
  for _ in range(3):
    x = Tensor.rand(256).realize()
    refs += watch(x, jit(x))
  m = Tensor.rand(8).shard(("CPU:0", "CPU:1"), axis=0).realize()
  refs += watch(m)
  del x, jit, m
  return alive(refs) == 0


def check(full: bool) -> Result:
  n, nviz = (1000, 100) if full else (300, 30)
  freed, plain, viz = _weakrefs_die(), _soak(n, False), _soak(nviz, True)
  ok = freed and plain["mem_used_delta"] == 0 and viz["mem_used_delta"] == 0 and plain["rss_growth_mb"] < RSS_LIMIT_MB
  detail = (f"eager/jit/multi-device weakrefs {'all dead' if freed else 'ALIVE'}; {n} iterations: mem_used back to start "
            f"{plain['mem_used_delta'] == 0}, RSS +{plain['rss_growth_mb']:.2f} MB; VIZ=1 {nviz} iterations: buffers freed "
            f"{viz['mem_used_delta'] == 0}, trace +{viz['viz_trace_growth'] / nviz:.0f} records/iter, RSS +{viz['rss_growth_mb'] / nviz:.2f} MB/iter")
  return Result(Status.PASS if ok else Status.FAIL, ran=f"GC checks and a {n}-iteration soak (and {nviz} with VIZ=1) on the CPU",
                figure=round(plain["rss_growth_mb"], 2), unit=f"MB RSS growth over {n} iterations", baseline=f"limit {RSS_LIMIT_MB:g} MB",
                detail=detail)


BOUNTY = Bounty(15, "buffer freeing on CPU shown in VIZ", "tinybounty.validate.gc",
                hardware="CPU", check=check)
