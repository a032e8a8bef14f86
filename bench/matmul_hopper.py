"""tinygrad matmul TFLOPS on an NVIDIA GPU against cuBLAS (fp16/bf16) and torch._scaled_mm (fp8), same process run.

  DEV=CUDA python bench/matmul_hopper.py [--sizes 4096 8192] [--dtypes fp16 bf16 fp8 fp8fast] [--reps 10]
Each row: stock tinygrad 0.14.0, tinygrad with tinybounty.runtime.gemm installed (fp16/bf16), and torch, with ratios to
torch. fp8fast: both sides with fast accumulation (scaled_mm's fast_accum, torch's use_fast_accum).
BEAM=2 in the environment makes stock tinygrad search its kernels first (slow). DEV=NV works the same way.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def tflops(n: int, seconds: float) -> float: return 2 * n**3 / seconds / 1e12


def time_tinygrad(fn, reps: int, device: str | None = None) -> list[float]:
  """Seconds per call of fn on a tinygrad device (DEV's by default), synchronizing around each call, after 3 warmups."""
  from tinygrad import Device
  dev = Device[device or Device.DEFAULT]
  for _ in range(3): fn()
  dev.synchronize()
  out = []
  for _ in range(reps):
    st = time.perf_counter()
    fn()
    dev.synchronize()
    out.append(time.perf_counter() - st)
  return out


def time_torch(fn, reps: int) -> list[float]:
  import torch
  for _ in range(3): fn()
  torch.cuda.synchronize()
  out = []
  for _ in range(reps):
    st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    st.record()
    fn()
    en.record()
    torch.cuda.synchronize()
    out.append(st.elapsed_time(en) / 1e3)
  return out


def tinygrad_case(n: int, dtype: str, ours: bool):
  """A jitted tinygrad product of fresh random inputs and a function that checks it against float64 numpy on a slice."""
  from tinygrad import Tensor, TinyJit, dtypes

  from tinybounty.runtime import gemm
  from tinybounty.runtime.fp8 import quantize, scaled_mm
  (gemm.install if ours else gemm.uninstall)()
  rng = np.random.default_rng(n)
  a_np, b_np = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
  if dtype.startswith("fp8"):  # b held column-major (a contiguous b.T), as torch._scaled_mm wants it too
    (a, sa), (bt, sb) = quantize(Tensor(a_np)), quantize(Tensor(b_np.T.copy()))
    a, bt, sa, sb = a.realize(), bt.realize(), sa.realize(), sb.realize()
    stock = lambda: (a.matmul(bt.T, dtype=dtypes.float32) * (sa * sb)).cast(dtypes.bfloat16)  # 0.14.0's own fp8 tensor cores
    fast = dtype == "fp8fast"
    run = TinyJit(lambda: (scaled_mm(a, bt.T, sa, sb, out_dtype=dtypes.bfloat16, fast_accum=fast) if ours else stock()).realize())
  else:
    dt = {"fp16": dtypes.half, "bf16": dtypes.bfloat16}[dtype]
    a, b = Tensor(a_np).cast(dt).realize(), Tensor(b_np).cast(dt).realize()
    run = TinyJit(lambda: (a @ b).realize())
  def rel_err() -> float:
    out = run().float().numpy()[:256]
    ref = a_np[:256].astype(np.float64) @ b_np.astype(np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
  return run, rel_err


def torch_case(n: int, dtype: str):
  import torch
  g = torch.Generator(device="cuda").manual_seed(n)
  a = torch.randn(n, n, device="cuda", generator=g)
  b = torch.randn(n, n, device="cuda", generator=g)
  if dtype.startswith("fp8"):
    sa, sb = (a.abs().max() / 448).float(), (b.abs().max() / 448).float()
    a8, b8 = (a / sa).to(torch.float8_e4m3fn), (b / sb).to(torch.float8_e4m3fn).t().contiguous().t()
    return lambda: torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=dtype == "fp8fast")
  dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
  a, b = a.to(dt), b.to(dt)
  return lambda: a @ b


def main() -> None:
  from tinygrad.helpers import getenv
  from tqdm import tqdm

  from tinybounty.hardware import machine
  from tinybounty.runtime import nv
  nv.install()  # lets DEV=NV start on Hopper; no effect on DEV=CUDA
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
  p.add_argument("--dtypes", nargs="+", default=["fp16", "bf16", "fp8"], choices=["fp16", "bf16", "fp8", "fp8fast"])
  p.add_argument("--reps", type=int, default=10)
  args = p.parse_args()
  print(f"machine: {machine()}  BEAM={getenv('BEAM', 0)}")
  rows = []
  for n in args.sizes:
    for dt in tqdm(args.dtypes, desc=f"n={n}"):
      row = [n, dt]
      for ours in (False, True):
        run, rel_err = tinygrad_case(n, dt, ours)
        tg = time_tinygrad(run, args.reps)
        row += [f"{tflops(n, min(tg)):.1f}/{tflops(n, statistics.median(tg)):.1f}", tflops(n, statistics.median(tg)), rel_err()]
      th = time_torch(torch_case(n, dt), args.reps)
      rows.append(row + [f"{tflops(n, min(th)):.1f}/{tflops(n, statistics.median(th)):.1f}", tflops(n, statistics.median(th))])
  cols = f"{'best/med':>15} {'ratio':>6} {'err':>8}"
  print(f"{'n':>5} {'dtype':>5} | stock {cols} | tinybounty {cols} | {'torch best/med':>15}")
  for n, dt, s_txt, s_med, s_err, g_txt, g_med, g_err, t_txt, t_med in rows:
    print(f"{n:>5} {dt:>5} | {s_txt:>21} {s_med / t_med:>6.3f} {s_err:>8.1e} | {g_txt:>26} {g_med / t_med:>6.3f} {g_err:>8.1e} | {t_txt:>15}")


if __name__ == "__main__":
  main()
