"""Kernel launch overhead and JIT replay of a small-kernel model: tinygrad DEV=NV against DEV=CUDA on one GPU.

  python bench/nv_launch.py [--reps 50]
NV is tinygrad's own driver-level runtime (on Hopper after tinybounty.runtime.nv.install()); CUDA goes through libcuda.
Prints per-launch microseconds (a jitted chain of 256 tiny kernels, replayed as one graph) and the replay time of a
decode-like step (12 blocks of layernorm, 768x768 linears, GELU, residual at batch 1: many small kernels).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

CHAIN = 256


def timed(fn, dev, reps: int) -> list[float]:
  for _ in range(3): fn()
  dev.synchronize()
  out = []
  for _ in range(reps):
    st = time.perf_counter()
    fn()
    dev.synchronize()
    out.append(time.perf_counter() - st)
  return out


def chain_step(device: str):
  from tinygrad import Tensor, TinyJit
  x = Tensor.zeros(256, device=device).contiguous().realize()
  @TinyJit
  def step():
    y = x
    for i in range(CHAIN): y = (y + i).contiguous()  # each a separate kernel
    return y.realize()
  return step


def decode_step(device: str, dim: int = 768, blocks: int = 12):
  from tinygrad import Tensor, TinyJit, nn
  rng = np.random.default_rng(0)
  layers = [(nn.LayerNorm(dim), Tensor(rng.standard_normal((dim, dim), dtype=np.float32) / dim**0.5, device=device),
             Tensor(rng.standard_normal((dim, dim), dtype=np.float32) / dim**0.5, device=device)) for _ in range(blocks)]
  for ln, _, _ in layers: ln.weight, ln.bias = ln.weight.to(device).realize(), ln.bias.to(device).realize()
  x = Tensor(rng.standard_normal((1, dim), dtype=np.float32), device=device).realize()
  @TinyJit
  def step():
    h = x
    for ln, w1, w2 in layers: h = h + (ln(h) @ w1).gelu() @ w2
    return h.realize()
  return step


def main() -> None:
  from tinygrad import Device

  from tinybounty.hardware import machine
  from tinybounty.runtime import nv
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--reps", type=int, default=50)
  args = p.parse_args()
  nv.install()
  print(f"machine: {machine()}")
  res = {}
  for d in ("CUDA", "NV"):
    dev = Device[d]
    res[d, "chain"] = [t / CHAIN * 1e6 for t in timed(chain_step(d), dev, args.reps)]
    res[d, "decode"] = [t * 1e6 for t in timed(decode_step(d), dev, args.reps)]
    out_d = decode_step(d)
    for _ in range(3): out = out_d()
    res[d, "decode_out"] = out.numpy()
  assert np.allclose(res["NV", "decode_out"], res["CUDA", "decode_out"], rtol=1e-4, atol=1e-4), "NV and CUDA disagree on the decode step"
  print(f"{'bench':>30} {'NV min/median us':>20} {'CUDA min/median us':>20} {'CUDA/NV (median)':>17}")
  for k, what in (("chain", f"per kernel in a {CHAIN}-kernel graph"), ("decode", "decode-like step replay")):
    n, c = res["NV", k], res["CUDA", k]
    print(f"{what:>30} {min(n):>9.2f}/{statistics.median(n):>9.2f} {min(c):>9.2f}/{statistics.median(c):>9.2f} "
          f"{statistics.median(c) / statistics.median(n):>17.2f}")


if __name__ == "__main__":
  main()
