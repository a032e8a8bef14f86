"""gpt-fast's generate.py (or our gpt_fast_like.py) decoding on tiny vs PyTorch CPU, in one bench run.

  PYTHONPATH=. DEV=CPU python bench/gpt_fast.py [--models stories15M stories110M] [--tokens 32] [--modes eager compile]
                                                [--script ext/gpt-fast/generate.py] [--repeats 3]

For each model a random-weight checkpoint in gpt-fast's format is written (runner/gpt_fast_checkpoint.py), then the
script decodes greedily (--top_k 1 --temperature 0) through the runner on each device and mode: tiny eager, tiny
--compile (routed to the tiny backend), CPU eager, CPU --compile (inductor, where it works here). Figures are the
script's own tokens/sec (it times with torch.cuda.synchronize, which the runner makes synchronize tiny), min/median
over --repeats samples after a warm-up; the tokens of every run are compared with CPU eager's. The memory-bandwidth
limit: bytes read per token (the weights gpt-fast's `_get_model_size` counts, i.e. all but the embedding, plus the KV
cache) over a measured copy bandwidth (a large float32 copy on the CPU, best of 5).
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

import torch

from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.runner.gpt_fast import SCRIPTS, generate, gpt_fast_checkout
from tinybounty.runner.gpt_fast_checkpoint import SHAPES, write_checkpoint


def copy_bandwidth(mb: int = 256) -> float:
  """Bytes/s of a float32 copy (read + write counted), best of 5."""
  src = torch.empty(mb * 2**20 // 4)
  dst = torch.empty_like(src)
  best = float("inf")
  for _ in range(5):
    t = time.perf_counter()
    dst.copy_(src)
    best = min(best, time.perf_counter() - t)
  return 2 * src.numel() * 4 / best


def bytes_per_token(name: str, context: int) -> int:
  """bf16 weights read per decoded token (all but the embedding table, which is only gathered) plus the KV cache."""
  s = SHAPES[name]
  per_layer = (s.n_head + 2 * s.kv_heads) * s.head_dim * s.dim + s.dim * s.dim + 3 * s.hidden * s.dim + 2 * s.dim
  weights = s.n_layer * per_layer + s.vocab_size * s.dim + s.dim
  kv = 2 * s.n_layer * s.kv_heads * s.head_dim * context
  return 2 * (weights + kv)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=["stories15M", "stories110M"], choices=sorted(SHAPES))
  p.add_argument("--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"])
  p.add_argument("--devices", nargs="+", default=["cpu", "tiny"])
  p.add_argument("--tokens", type=int, default=32)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--script", type=pathlib.Path, help="default: gpt-fast's generate.py where its checkout is present, else gpt_fast_like.py")
  a = p.parse_args()
  script = a.script or ((gpt_fast_checkout() / "generate.py") if gpt_fast_checkout() else SCRIPTS / "gpt_fast_like.py")
  bw = copy_bandwidth()
  print(f"script {script}; copy bandwidth {bw / 1e9:.1f} GB/s; machine {machine()}", file=sys.stderr)
  rows = []
  with tempfile.TemporaryDirectory() as d:
    for name in a.models:
      ckpt = write_checkpoint(pathlib.Path(d) / name)
      limit = bw / bytes_per_token(name, a.tokens + 16)
      ref_tokens, cpu_eager = None, None
      for mode in a.modes:
        for dev in a.devices:
          try:
            g = generate(script, dev, ckpt, max_new_tokens=a.tokens, compile=mode == "compile", num_samples=a.repeats + 1)
          except Exception as e:  # inductor may not build on this machine: say so, never a figure
            print(f"{name} {dev} {mode}: FAILED {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            continue
          tps = g.tokens_per_s[1:] or g.tokens_per_s  # first sample: warm-up (kernel compiles)
          ref_tokens = ref_tokens or (g.tokens if dev == "cpu" and mode == "eager" else None)
          same = "tokens = CPU eager" if ref_tokens is not None and g.tokens == ref_tokens else "tokens DIFFER" if ref_tokens else "no CPU reference"
          med = statistics.median(tps)
          if dev == "cpu" and mode == "eager": cpu_eager = med
          ratio = f", {med / cpu_eager:.2f}x CPU eager" if cpu_eager else ""
          line = (f"{name} {dev} {mode}: min {min(tps):.2f} / median {med:.2f} tok/s{ratio}; {med / limit:.1%} of the bandwidth limit "
                  f"({limit:.0f} tok/s); {same}")
          print(line, flush=True)
          rows.append(format_row(f"gpt_fast_{name}_{dev}_{mode}", machine() + " (2 cores, shared/loaded)",
                                 f"python bench/gpt_fast.py --models {name} --tokens {a.tokens}", line, "PyTorch CPU eager, same run"))
  print("\n".join(rows))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
