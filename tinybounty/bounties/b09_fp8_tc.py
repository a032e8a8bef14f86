"""Bounty 09: tensor cores for new NVIDIA number formats (FP8)."""
from __future__ import annotations

import numpy as np

from tinybounty.bounties.base import Bounty, Result, Status, from_ratio, needs_hardware

BENCH, TARGET = "matmul_fp8_8192", 0.25  # of torch._scaled_mm at 8192^3, default settings


def _quoted() -> tuple[float, str] | None:
  """The newest recorded ratio to torch._scaled_mm, and where it came from."""
  from tinybounty.records import latest
  if (rec := latest(BENCH)) is None: return None
  return float(rec.figure.split("x")[0]), f"{rec.figure} vs {rec.baseline} on {rec.machine}, {rec.date}"


def _gpu_check() -> Result:
  """scaled_mm on the GPU against float64 on the same fp8 values (kernel and stock paths), plus the recorded speed."""
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
  if worst > tol: return Result(Status.FAIL, ran=ran, figure=worst, unit="relative error", detail="fp8 product is wrong")
  if (q := _quoted()) is None: return Result(Status.PARTIAL, ran=ran, detail=f"correct (rel err {worst:.1e}); no {BENCH} record yet")
  return from_ratio(ran + f"; speed quoted from docs/benchmarks.md ({BENCH})", q[0], TARGET, "x torch._scaled_mm", q[1],
                    detail=f"correct (rel err {worst:.1e}); target {TARGET}x torch._scaled_mm at 8192")


def _render_check() -> Result:
  """No GPU: NVRTC compiles the fp8 kernels for sm_89 and sm_90; the speed is quoted from the newest record."""
  from tinybounty.runtime.nvrtc import use_pip_nvrtc
  if not use_pip_nvrtc(): return Result(Status.NOT_BUILT, ran="nothing: NVRTC (pip extra `render`) is not installed")
  from tinygrad import Device, dtypes
  from tinygrad.helpers import Context

  from tinybounty.runtime import gemm
  for arch in ("sm_89", "sm_90"):
    with Context(DEV=f"NULL:CUDA:{arch}"):
      Device["NULL"].renderer.compiler.compile(gemm.kernel_source("fp8_check", 256, 256, 256, dtypes.fp8e4m3, dtypes.bfloat16))
  gemm._sm90a_compiler(False).compile(gemm.wgmma_source("fp8_check", 256, 256, 256, dtypes.fp8e4m3, dtypes.bfloat16))
  q = _quoted()
  ran = ("pipelined fp8 gemm (mma.sync m16n8k32 e4m3) compiled by NVRTC for sm_89 and sm_90, the Hopper wgmma one for sm_90a"
         + (f"; speed quoted from {BENCH}" if q else ""))
  if q is None: return Result(Status.PARTIAL, ran=ran, detail=f"no {BENCH} record yet")
  return from_ratio(ran, q[0], TARGET, "x torch._scaled_mm", q[1])


def check(full: bool) -> Result:
  from tinybounty.hardware import cuda_sm
  if (cuda_sm() or 0) >= 89: return _gpu_check()
  return needs_hardware("an NVIDIA GPU of sm_89+ (Ada, Hopper, Blackwell)", _render_check())


BOUNTY = Bounty(9, "tensor cores for new NVIDIA number formats (FP8)", "tinybounty.runtime.fp8",
                hardware="an NVIDIA GPU of sm_89+ (Ada, Hopper, Blackwell)", check=check)
