"""FP8 scaled matmul: numerics on the CPU against numpy and PyTorch, CUDA kernels rendered for sm_89/sm_90 without a GPU."""
import os

import numpy as np
import pytest
from tinygrad import Device, Tensor, dtypes
from tinygrad.codegen import to_program
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops, UOp

from tinybounty.runtime.fp8 import FP8_MAX, quantize, scaled_mm

FORMATS = {"e4m3": dtypes.fp8e4m3, "e5m2": dtypes.fp8e5m2}
needs_nvrtc = pytest.mark.skipif(not os.environ.get("NVRTC_PATH") or not os.environ.get("CUDA_PATH"),
                                 reason="NVRTC and CUDA headers (pip extra `render`) are not installed")


def rand(*shape, seed=0): return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantize_rounds_like_torch(fmt):
  """On the CPU, 0.14.0 emulates fp8 through half (double rounding) and flushes fp8 subnormals: exact against torch on that."""
  torch = pytest.importorskip("torch")
  x = rand(64, 96) * 5
  q, scale = quantize(Tensor(x), FORMATS[fmt])
  assert np.isclose(scale.item(), np.abs(x).max() / FP8_MAX[FORMATS[fmt]])
  scaled = (x / np.float32(scale.item())).astype(np.float16)
  ref = torch.from_numpy(scaled).to({"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[fmt]).float().numpy()
  normal = np.abs(scaled) >= {"e4m3": 2.0**-6, "e5m2": 2.0**-14}[fmt]
  np.testing.assert_array_equal(q.float().numpy()[normal], ref[normal])
  assert normal.mean() > 0.95


@pytest.mark.parametrize("fmt", FORMATS)
def test_scaled_mm_is_the_scaled_product_of_the_fp8_values(fmt):
  a, b = rand(48, 80) * 3, rand(80, 40, seed=1)
  (qa, sa), (qb, sb) = quantize(Tensor(a), FORMATS[fmt]), quantize(Tensor(b), FORMATS[fmt])
  out = scaled_mm(qa, qb, sa, sb, out_dtype=dtypes.float32).numpy()
  ref = (qa.float().numpy().astype(np.float64) @ qb.float().numpy().astype(np.float64)) * sa.item() * sb.item()
  assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-6
  exact = a.astype(np.float64) @ b.astype(np.float64)
  assert np.linalg.norm(out - exact) / np.linalg.norm(exact) < {"e4m3": 0.06, "e5m2": 0.12}[fmt]  # what fp8 rounding costs


def test_bad_inputs_are_named():
  f8 = Tensor.ones(4, 4).cast(dtypes.fp8e4m3)
  with pytest.raises(TypeError, match="a must be fp8"): scaled_mm(Tensor.ones(4, 4), f8)
  with pytest.raises(ValueError, match=r"\(M, K\) @ \(K, N\)"): scaled_mm(f8, Tensor.ones(5, 4).cast(dtypes.fp8e4m3))
  with pytest.raises(TypeError, match="quantize dtype"): quantize(Tensor.ones(4), dtypes.half)


def kernels(t: Tensor) -> list[UOp]: return [u.src[0] for u in t.schedule_linear().toposort() if u.op is Ops.CALL]


@needs_nvrtc
@pytest.mark.parametrize("arch", ["sm_89", "sm_90"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_tile_aligned_products_take_the_pipelined_kernel(arch, fmt):
  """(256, 512) @ (512, 128): one PROGRAM of the fp8 gemm (scales in its epilogue), and NVRTC compiles it for the arch."""
  with Context(DEV=f"NULL:CUDA:{arch}"):
    a, bt = Tensor.empty(256, 512, dtype=FORMATS[fmt], device="NULL"), Tensor.empty(128, 512, dtype=FORMATS[fmt], device="NULL")
    ks = kernels(scaled_mm(a, bt.T, Tensor.empty(1, device="NULL"), Tensor.empty(1, device="NULL")))
    assert [k.arg.name for k in ks] == [f"gemm_{fmt}_bf16_256_128_512"]
    prg = to_program(ks[0], Device["NULL"].renderer)
  src, lib = (next(s.arg for s in prg.src if s.op is op) for op in (Ops.SOURCE, Ops.BINARY))
  assert f"mma.sync.aligned.m16n8k32.row.col.f32.{fmt}.{fmt}.f32" in src and lib[:4] == b"\x7fELF"


@needs_nvrtc
@pytest.mark.parametrize("fast_accum", [False, True], ids=["promoted", "fast"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_hopper_wgmma_kernel_compiles_for_sm90a(fmt, fast_accum):
  """The DEV=CUDA Hopper kernel: NVRTC builds it for sm_90a; m64n64 wgmmas summed apart per stage, or m64n128 ones."""
  from tinybounty.runtime import gemm
  src = gemm.wgmma_source("gemm_test", 256, 384, 512, FORMATS[fmt], dtypes.bfloat16, fast_accum)
  assert f"wgmma.mma_async.sync.aligned.m64n{128 if fast_accum else 64}k32.f32.{fmt}.{fmt}" in src
  assert gemm._sm90a_compiler(False).compile(src)[:4] == b"\x7fELF"


@needs_nvrtc
@pytest.mark.parametrize("arch", ["sm_89", "sm_90"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_other_shapes_render_one_stock_fp8_mma_kernel(arch, fmt):
  """(112, 96) @ (96, 56), off the 128 tiles: the scale product, then one stock mma.sync m16n8k32 kernel with the cast fused."""
  with Context(DEV=f"NULL:CUDA:{arch}"):
    a = Tensor.empty(112, 96, dtype=FORMATS[fmt], device="NULL")
    b = Tensor.empty(96, 56, dtype=FORMATS[fmt], device="NULL")
    sa, sb = Tensor.empty(1, device="NULL").reshape(()), Tensor.empty(1, device="NULL").reshape(())
    ks = kernels(scaled_mm(a, b, sa, sb))
    assert len(ks) == 2 and all(k.op is Ops.SINK for k in ks)
    prg = to_program(ks[-1], Device["NULL"].renderer)
  src, lib = (next(s.arg for s in prg.src if s.op is op) for op in (Ops.SOURCE, Ops.BINARY))
  assert f"mma.sync.aligned.m16n8k32.row.col.f32.{fmt}.{fmt}.f32" in src
  assert "nv_bfloat16" in src and lib[:4] == b"\x7fELF"
