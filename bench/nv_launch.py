"""Kernel launch overhead and JIT replay of a small-kernel model: tinygrad DEV=NV against DEV=CUDA on one GPU.

  python bench/nv_launch.py [--reps 50]
NV is tinygrad's own driver-level runtime (on Hopper after tinybounty.runtime.nv.install()); CUDA goes through libcuda.
Prints per-launch microseconds (a jitted chain of 256 tiny kernels, replayed as one graph) and the replay time of one
GPT-2 small decode step (tinybounty.models.gpt2, batch 1, KV cache, symbolic start_pos): many small kernels.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from matmul_hopper import time_tinygrad  # bench/ is on sys.path when a bench script runs

CHAIN = 256


def chain_step(device: str):
  from tinygrad import Tensor, TinyJit
  x = Tensor.zeros(256, device=device).contiguous().realize()
  @TinyJit
  def step():
    y = x
    for i in range(CHAIN): y = (y + i).contiguous()  # each a separate kernel
    return y.realize()
  return step


def gpt2_decode_step(device: str):
  """A jitted GPT-2 small decode step at start_pos 63 (cache prefilled) on `device`."""
  from tinygrad import Tensor, TinyJit, UOp, nn
  from tinygrad.helpers import Context

  from tinybounty.models.gpt2 import GPT2, GPT2Config
  with Context(DEV=device):
    Tensor.manual_seed(0)
    model = GPT2(GPT2Config.small())
    Tensor.realize(*nn.state.get_parameters(model))
    tokens = Tensor.randint(1, 64, high=model.cfg.vocab_size).realize()
    Tensor.realize(model(tokens[:, :63], 0), *model.kv_caches())
  step, last = TinyJit(lambda tok, pos: model(tok, pos).realize()), tokens[:, 63:].contiguous().realize()
  pos = UOp.variable("start_pos", 1, model.cfg.max_seq_len - 1).bind(63)
  return lambda: step(last, pos)


def main() -> None:
  from tqdm import tqdm

  from tinybounty.hardware import machine
  from tinybounty.runtime import nv
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--reps", type=int, default=50)
  args = p.parse_args()
  nv.install()
  print(f"machine: {machine()}")
  res = {}
  for d in tqdm(("CUDA", "NV"), desc="devices"):
    res[d, "chain"] = [t / CHAIN * 1e6 for t in time_tinygrad(chain_step(d), args.reps, d)]
    step = gpt2_decode_step(d)
    res[d, "decode"] = [t * 1e6 for t in time_tinygrad(step, args.reps, d)]
    res[d, "logits"] = step().numpy()
  assert np.isfinite(res["NV", "logits"]).all() and np.isfinite(res["CUDA", "logits"]).all()
  print(f"{'bench':>30} {'NV min/median us':>20} {'CUDA min/median us':>20} {'CUDA/NV (median)':>17}")
  for k, what in (("chain", f"per kernel in a {CHAIN}-kernel graph"), ("decode", "GPT-2 small decode step")):
    n, c = res["NV", k], res["CUDA", k]
    print(f"{what:>30} {min(n):>9.2f}/{statistics.median(n):>9.2f} {min(c):>9.2f}/{statistics.median(c):>9.2f} "
          f"{statistics.median(c) / statistics.median(n):>17.2f}")


if __name__ == "__main__":
  main()
