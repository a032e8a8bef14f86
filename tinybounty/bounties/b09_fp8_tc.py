"""Bounty 09: tensor cores for new NVIDIA number formats (FP8).

Criterion. fp8 (e4m3) scaled_mm on an NVIDIA GPU of sm_89+ through tensor cores, correct against float64 on the same
fp8 values, and at least TARGET x torch._scaled_mm's speed at 8192^3 (bench/matmul.py, recorded in docs/benchmarks.md).
- FAIL: the relative error above its bound (2e-4 with Hopper's wgmma, whose fp8 sums use fewer bits, as cuBLAS's do;
  1e-5 otherwise), a crash, or a speed record that cannot be read.
- PASS: correct here, and the newest record, made on this machine, at TARGET or above.
- PARTIAL: correct here, but the record is below TARGET (the figure), made on another machine (its ratio shown, labelled,
  not counted), or missing.
- NEEDS-HARDWARE: no sm_89+ GPU; the analogue: NVRTC compiles the fp8 kernels for sm_89/sm_90 (and wgmma for sm_90a).
  The record is quoted with its date and machine and sets no status.
"""
from __future__ import annotations

import re

import numpy as np

from tinybounty.bounties.base import Bounty, Result, Status, from_ratio, needs_hardware, quoted, same_machine
from tinybounty.records import Record

BENCH, TARGET = "matmul_fp8_8192", 0.25  # of torch._scaled_mm at 8192^3, default settings


def verdict(ran: str, rec: Record | None, here: str, error: float | None = None, bound: float = 0.0) -> Result:
  """The status by the criterion above: `error` None means no sm_89+ GPU (the kernels compiled, `ran` says for what)."""
  if error is None:
    return needs_hardware("an NVIDIA GPU of sm_89+ (Ada, Hopper, Blackwell)",
                          Result(Status.PASS, ran=ran, detail="compiled; " + (f"speed quoted ({quoted(rec)})" if rec else f"no {BENCH} record")))
  if not error <= bound: return Result(Status.FAIL, ran=ran, figure=error, unit="relative error", detail=f"fp8 product is wrong (bound {bound:g})")
  correct = f"correct (rel err {error:.1e}, bound {bound:g})"
  if rec is None: return Result(Status.PARTIAL, ran=ran, detail=f"{correct}; no {BENCH} record: the speed target is unshown")
  if (m := re.match(r"([\d.]+)x", rec.figure)) is None: return Result(Status.FAIL, ran=ran, detail=f"cannot read the ratio of {quoted(rec)}")
  ratio = float(m.group(1))
  if not same_machine(rec.machine, here):
    return Result(Status.PARTIAL, ran=ran, figure=ratio, unit="x torch._scaled_mm (quoted, another machine)", baseline=rec.baseline,
                  detail=f"{correct}; speed not shown on this machine: {quoted(rec)}")
  return from_ratio(ran + f"; speed recorded on this machine ({BENCH}, {rec.date})", ratio, TARGET, "x torch._scaled_mm", rec.baseline,
                    detail=f"{correct}; target {TARGET}x torch._scaled_mm at 8192")


def _gpu_check() -> tuple[str, float, float]:
  """scaled_mm on the GPU against float64 on the same fp8 values (kernel and stock paths): what ran, the error, its bound."""
  from tinygrad import Tensor, dtypes

  from tinybounty.runtime.fp8 import quantize, scaled_mm
  from tinybounty.runtime.gemm import wgmma_device
  rng, worst = np.random.default_rng(0), 0.0
  for m, k, n in ((1024, 2048, 512), (112, 96, 56)):
    (a, sa), (bt, sb) = quantize(Tensor(rng.standard_normal((m, k), dtype=np.float32), device="CUDA")), \
                        quantize(Tensor(rng.standard_normal((n, k), dtype=np.float32), device="CUDA"))
    out = scaled_mm(a, bt.T, sa, sb, out_dtype=dtypes.float32).numpy()
    ref = a.float().numpy().astype(np.float64) @ bt.float().numpy().astype(np.float64).T * sa.item() * sb.item()
    worst = max(worst, float(np.linalg.norm(out - ref) / np.linalg.norm(ref)))
  # Hopper's fp8 wgmma sums in fewer bits than fp32 (cuBLAS's too: torch._scaled_mm is off by 1.3e-4 on such data, ours 7.6e-5)
  wgmma = wgmma_device("CUDA")
  tol = 2e-4 if wgmma else 1e-5
  ran = (f"fp8 e4m3 scaled_mm on CUDA (1024x2048x512 pipelined {'wgmma' if wgmma else 'mma.sync'} kernel, 112x96x56 stock) "
         f"vs float64 on the same fp8 values (bound {tol:g})")
  return ran, worst, tol


def _render_check() -> str | Result:
  """No GPU: NVRTC compiles the fp8 kernels for sm_89 and sm_90 (what ran), or NOT-BUILT without NVRTC."""
  from tinybounty.runtime.nvrtc import use_pip_nvrtc
  if not use_pip_nvrtc(): return Result(Status.NOT_BUILT, ran="nothing: NVRTC (pip extra `render`) is not installed")
  from tinygrad import Device, dtypes
  from tinygrad.helpers import Context

  from tinybounty.runtime import gemm
  for arch in ("sm_89", "sm_90"):
    with Context(DEV=f"NULL:CUDA:{arch}"):
      Device["NULL"].renderer.compiler.compile(gemm.kernel_source("fp8_check", 256, 256, 256, dtypes.fp8e4m3, dtypes.bfloat16))
  gemm._sm90a_compiler(False).compile(gemm.wgmma_source("fp8_check", 256, 256, 256, dtypes.fp8e4m3, dtypes.bfloat16))
  return "pipelined fp8 gemm (mma.sync m16n8k32 e4m3) compiled by NVRTC for sm_89 and sm_90, the Hopper wgmma one for sm_90a"


def check(full: bool) -> Result:
  from tinybounty.hardware import cuda_sm, machine
  from tinybounty.records import latest
  rec, here = latest(BENCH), machine()
  if (cuda_sm() or 0) >= 89:
    ran, error, bound = _gpu_check()
    return verdict(ran, rec, here, error, bound)
  ran = _render_check()
  return needs_hardware("an NVIDIA GPU of sm_89+ (Ada, Hopper, Blackwell)", ran) if isinstance(ran, Result) else verdict(ran, rec, here)


BOUNTY = Bounty(9, "tensor cores for new NVIDIA number formats (FP8)", "tinybounty.runtime.fp8",
                hardware="an NVIDIA GPU of sm_89+ (Ada, Hopper, Blackwell)", check=check)
