"""FP8 matrix products with float accumulation on NVIDIA tensor cores, scaled the way `torch._scaled_mm` is.

tinygrad 0.14.0 already routes fp8 x fp8 -> float reductions to `mma.sync ... .e4m3/.e5m2` (m16n8k32) on sm_89+, at
under 10% of torch._scaled_mm on Hopper. What users of PyTorch expect on top is per-tensor scaling: quantize each operand
with its own scale, multiply in fp8 with fp32 accumulation, and undo both scales on the way out. `scaled_mm` runs
tile-aligned products on sm_89+ through the pipelined fp8 kernel of `tinybounty.runtime.gemm` (scales applied in its
epilogue; wgmma on Hopper under DEV=CUDA, whose fp8 sums keep fewer bits than fp32, as cuBLAS's do), and everything
else as one stock tinygrad tensor-core kernel with the scaling fused into it.
"""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType

from tinybounty.runtime import gemm

FP8_MAX = {dtypes.fp8e4m3: 448.0, dtypes.fp8e5m2: 57344.0}


def _check_fp8(dtype: DType, what: str) -> None:
  if dtype not in FP8_MAX: raise TypeError(f"{what} must be fp8e4m3 or fp8e5m2, got {dtype}")


def quantize(x: Tensor, dtype: DType = dtypes.fp8e4m3) -> tuple[Tensor, Tensor]:
  """(x / scale) in fp8 and the float32 per-tensor scale, chosen so that max|x| lands on the format's largest value.

  The fp8 tensor is its own buffer (contiguous): on devices without native fp8 (the CPU), 0.14.0 keeps a cast to fp8
  that fuses into its consumer in wider registers, unrounded, so a lazily fused quantize would not be fp8 at all.
  """
  _check_fp8(dtype, "quantize dtype")
  amax = x.abs().max().cast(dtypes.float32)
  scale = (amax / FP8_MAX[dtype]).maximum(1e-12)
  return (x.cast(dtypes.float32) / scale).clip(-FP8_MAX[dtype], FP8_MAX[dtype]).cast(dtype).contiguous(), scale


def scaled_mm(a: Tensor, b: Tensor, scale_a: Tensor | float = 1.0, scale_b: Tensor | float = 1.0,
              out_dtype: DType = dtypes.bfloat16, fast_accum: bool = False) -> Tensor:
  """(a @ b) * scale_a * scale_b for fp8 a (M, K) and b (K, N), accumulated in float32: torch._scaled_mm's contract.

  As with torch, b is fastest stored column-major: pass `bt.T` for a contiguous (N, K) `bt` and no transpose is made.
  fast_accum is torch's use_fast_accum: on Hopper the tensor cores then accumulate across all of K in their own, narrower
  format (faster, less exact); elsewhere it changes nothing.
  """
  _check_fp8(a.dtype, "a")
  _check_fp8(b.dtype, "b")
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]: raise ValueError(f"scaled_mm needs (M, K) @ (K, N), got {a.shape} @ {b.shape}")
  sa, sb = (s if isinstance(s, Tensor) else Tensor(np.array([s], dtype=np.float32), device=a.device).reshape(()) for s in (scale_a, scale_b))
  if gemm.fp8_supported(a, b.T, out_dtype): return gemm.fp8_matmul(a, b.T, sa, sb, out_dtype, fast_accum)
  # the scale is its own kernel: 0.14.0 fusing a lazy amax-derived scale into the tensor-core kernel gave wrong results on CUDA
  return (a.matmul(b, dtype=dtypes.float32) * (sa.cast(dtypes.float32) * sb.cast(dtypes.float32)).contiguous()).cast(out_dtype)
