"""Bounty 15: buffer freeing on CPU shown in VIZ.

Criterion. Buffers die with their tensors on the CPU (eager, TinyJit, multi-device: weakrefs all dead), a soak keeps
tinygrad's mem_used at its start and RSS under RSS_LIMIT_MB, and a soak under VIZ=1 frees every buffer too while VIZ
really records (VIZ on in the child, its trace growing) and RSS grows under VIZ_RSS_PER_ITER_MB per iteration (each
iteration makes two 1 MB buffers, so a leaked one is >= 1 MB).
- PASS: all of that. Stock tinygrad 0.14.0 already frees on the CPU: the PASS certifies that behaviour as measured by
  tinybounty.validate.gc, not a change of ours, and the detail says so.
- FAIL: a weakref alive, mem_used not back, RSS over a limit, or VIZ not recording (a run where VIZ silently stayed off).
"""
from tinybounty.bounties.base import Bounty, Result, Status

RSS_LIMIT_MB = 5.0
VIZ_RSS_PER_ITER_MB = 0.5


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


def verdict(freed: bool, plain: dict, viz: dict) -> Result:
  """The status by the criterion above from the weakref check and the two soaks' JSON (tinybounty.validate.gc)."""
  n, nviz = plain["iterations"], viz["iterations"]
  viz_rss = viz["rss_growth_mb"] / nviz
  checks = {"weakrefs dead": freed, "mem_used back": plain["mem_used_delta"] == 0,
            f"RSS < {RSS_LIMIT_MB:g} MB": plain["rss_growth_mb"] < RSS_LIMIT_MB,
            "VIZ on": bool(viz["viz"]), "VIZ trace recorded": viz["viz_trace_growth"] > 0, "mem_used back under VIZ": viz["mem_used_delta"] == 0,
            f"VIZ RSS < {VIZ_RSS_PER_ITER_MB:g} MB/iter": viz_rss < VIZ_RSS_PER_ITER_MB}
  failed = [k for k, ok in checks.items() if not ok]
  detail = (f"eager/jit/multi-device weakrefs {'all dead' if freed else 'ALIVE'}; {n} iterations: mem_used back to start "
            f"{plain['mem_used_delta'] == 0}, RSS +{plain['rss_growth_mb']:.2f} MB; VIZ={int(bool(viz['viz']))} {nviz} iterations: buffers freed "
            f"{viz['mem_used_delta'] == 0}, trace +{viz['viz_trace_growth'] / nviz:.0f} records/iter, RSS +{viz_rss:.2f} MB/iter"
            + (f"; FAILED: {', '.join(failed)}" if failed else "; stock tinygrad 0.14.0 behaviour, measured"))
  return Result(Status.FAIL if failed else Status.PASS, ran=f"GC checks and a {n}-iteration soak (and {nviz} with VIZ=1) on the CPU",
                figure=round(plain["rss_growth_mb"], 2), unit=f"MB RSS growth over {n} iterations", baseline=f"limit {RSS_LIMIT_MB:g} MB",
                detail=detail)


def check(full: bool) -> Result:
  n, nviz = (1000, 100) if full else (300, 30)
  return verdict(_weakrefs_die(), _soak(n, False), _soak(nviz, True))


BOUNTY = Bounty(15, "buffer freeing on CPU shown in VIZ", "tinybounty.validate.gc",
                hardware="CPU", check=check)
