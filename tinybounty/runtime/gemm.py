"""Large matmuls on NVIDIA tensor cores through pipelined shared-memory kernels: half/bf16 on sm_80+, fp8 on sm_89+
(wgmma on Hopper).

Why stock 0.14.0 sits under 10% of cuBLAS on Hopper: its tensor-core kernels load every mma fragment straight from
global memory (no shared-memory staging, so each element is fetched by many warps and the loads are 4-byte scattered
reads), and nothing overlaps the loads of the next K step with the math of this one. These kernels stage 128x128 output
tiles' operands through XOR-swizzled shared memory with `cp.async` three K steps deep, feed `mma.sync` from `ldmatrix`
and write the fp32 accumulators back once. They go into tinygrad as custom PROGRAMs (their own CUDA source, compiled by
the device's own compiler), so they run on DEV=CUDA and DEV=NV, inside TinyJit, with the rest of the graph tinygrad's.

`install()` routes `Tensor.dot` / `@` to the 16-bit kernel for 2-D half/bf16 products whose M, N are multiples of 128
and K of 32 on devices that render CUDA C for sm_80 or newer (its backward is two more such products); everything else
goes to stock tinygrad unchanged. `fp8.scaled_mm` uses the fp8 kernel where it fits; on Hopper under DEV=CUDA that is
a wgmma kernel (sm_90a, built here by NVRTC since tinygrad's compiler targets plain sm_90) reading both operands straight
from the same swizzled shared memory, with fp32 promotion of each 64-deep K stage unless fast_accum is asked for.
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np
from tinygrad import Device, Tensor, dtypes
from tinygrad.dtype import DType
from tinygrad.renderer import Estimates
from tinygrad.uop.ops import KernelInfo, Ops, ProgramInfo, UOp

HERE = pathlib.Path(__file__).parent
SOURCE_16, SOURCE_FP8 = (HERE / "gemm_sm80.cu").read_text(), (HERE / "gemm_fp8_sm89.cu").read_text()
SOURCE_FP8_WGMMA = (HERE / "gemm_fp8_sm90a.cu").read_text()
TILE_M, TILE_N, THREADS = 128, 128, 128
# Hopper fp8: 2 warpgroups, 128x128x64 tile, 3 stages (48 KB shared), 2 CTAs per SM; the precise (promoting) form runs
# its wgmmas 64 columns at a time, so its stage sums fit in the registers that 2 CTAs per SM leave
WGMMA_THREADS, WGMMA_STAGES, WGMMA_MIN_BLOCKS, WGMMA_PROMOTE_N, WGMMA_PROMOTE_K = 256, 3, 2, 64, 2
TILE_K = {dtypes.half: 32, dtypes.bfloat16: 32, dtypes.fp8e4m3: 64, dtypes.fp8e5m2: 64}
MMA_TYPE = {dtypes.half: "f16", dtypes.bfloat16: "bf16", dtypes.fp8e4m3: "e4m3", dtypes.fp8e5m2: "e5m2"}
OUT_NAME = {dtypes.float32: "f32", dtypes.half: "f16", dtypes.bfloat16: "bf16"}
MIN_SM = {dtypes.half: 80, dtypes.bfloat16: 80, dtypes.fp8e4m3: 89, dtypes.fp8e5m2: 89}
FP8_OUT = {dtypes.float32: ("float", 'asm volatile("st.global.v2.f32 [%0], {%1, %2};" :: "l"(C + i), "f"(x), "f"(y));'),
           **{dt: ("unsigned short", f'unsigned v; asm("cvt.rn.{name}x2.f32 %0, %1, %2;" : "=r"(v) : "f"(y), "f"(x)); '
                                     '*(unsigned*)(C + i) = v;') for dt, name in ((dtypes.half, "f16"), (dtypes.bfloat16, "bf16"))}}


def _sm(device) -> int:
  """The SM version of a device whose renderer compiles CUDA C (CUDA, NV, or NULL:CUDA:sm_XY for rendering); else 0."""
  from tinygrad.renderer.cstyle import CUDARenderer
  if not isinstance(device, str): return 0
  ren = Device[device].renderer
  return int(ren.target.arch[3:]) if isinstance(ren, CUDARenderer) and ren.target.arch.startswith("sm_") else 0


def _fits(m, n, k, dtype: DType, device) -> bool:
  return (dtype in TILE_K and all(isinstance(s, int) for s in (m, n, k)) and m % TILE_M == 0 and n % TILE_N == 0
          and k % TILE_K[dtype] == 0 and _sm(device) >= MIN_SM[dtype])


def supported(a: Tensor, b: Tensor) -> bool:
  """Whether `a @ b` fits the 16-bit kernel: 2-D, same half/bf16 dtype, tile-aligned, a device rendering CUDA C for sm_80+."""
  return (a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype in (dtypes.half, dtypes.bfloat16) and a.device == b.device
          and a.shape[1] == b.shape[0] and _fits(a.shape[0], b.shape[1], a.shape[1], a.dtype, a.device))


def fp8_supported(a: Tensor, bt: Tensor, out_dtype: DType) -> bool:
  """Whether a @ bt.T fits the fp8 kernel: same fp8 format, (M, K) and (N, K), tile-aligned, sm_89+, f32/f16/bf16 out."""
  return (a.ndim == 2 and bt.ndim == 2 and a.dtype == bt.dtype and a.dtype in (dtypes.fp8e4m3, dtypes.fp8e5m2) and out_dtype in FP8_OUT
          and a.device == bt.device and a.shape[1] == bt.shape[1] and _fits(a.shape[0], bt.shape[0], a.shape[1], a.dtype, a.device))


def kernel_source(name: str, m: int, n: int, k: int, dtype: DType, out_dtype: DType | None = None) -> str:
  """The CUDA source of one (M, N, K, input dtype[, fp8 output dtype]) instance."""
  head = f"#define M {m}\n#define N {n}\n#define K {k}\n"
  if dtype in (dtypes.half, dtypes.bfloat16): return head + SOURCE_16.replace("NAME", name).replace("DT", MMA_TYPE[dtype])
  out_t, store2 = FP8_OUT[out_dtype or dtypes.float32]
  return head + SOURCE_FP8.replace("NAME", name).replace("FMT", MMA_TYPE[dtype]).replace("OUT_T", out_t).replace("STORE2", store2)


def wgmma_source(name: str, m: int, n: int, k: int, dtype: DType, out_dtype: DType, fast_accum: bool = False) -> str:
  """The CUDA source of one instance of the Hopper (sm_90a) fp8 kernel: wgmma from shared memory.

  fast_accum (torch's use_fast_accum) lets the tensor cores accumulate the whole K; otherwise each 64-deep stage is summed
  apart and added in fp32 (fp8 wgmma keeps fewer bits than fp32 while accumulating, so the error would grow with K).
  """
  wn = TILE_N if fast_accum else WGMMA_PROMOTE_N
  acc, (out_t, store2) = wn // 2, FP8_OUT[out_dtype]
  defs = {"M": m, "N": n, "K": k, "BN": TILE_N, "WN": wn, "ST": WGMMA_STAGES, "MINB": WGMMA_MIN_BLOCKS,
          "PROMOTE": 0 if fast_accum else WGMMA_PROMOTE_K}
  src = "".join(f"#define {key} {val}\n" for key, val in defs.items()) + SOURCE_FP8_WGMMA
  fills = {"NAME": name, "FMT": MMA_TYPE[dtype], "OUT_T": out_t, "STORE2": store2, "WN_S": str(wn), "DA_N": str(acc),
           "DB_N": str(acc + 1), "PRED_N": str(acc + 2), "ACC_REGS": ", ".join(f"%{i}" for i in range(acc)),
           "ACC_OPERANDS": ", ".join(f'"+f"(d[{i}])' for i in range(acc))}
  for key, val in fills.items(): src = src.replace(key, val)
  return src


@functools.cache
def _sm90a_compiler(ptx: bool):
  """NVRTC for sm_90a (wgmma): tinygrad's own compiler targets plain sm_90. PTX for DEV=CUDA, a cubin for DEV=NV, as theirs."""
  from tinygrad.runtime.support.compiler_cuda import NVRTCCompiler
  return NVRTCCompiler("sm_90a", ptx=ptx, cache_key="tinybounty")


def _program(params: tuple[UOp, ...], name: str, source: str, m: int, n: int, k: int, device: str, threads: int = THREADS,
             binary: bytes | None = None) -> UOp:
  """A PROGRAM compiled from `source` (by the device's compiler unless `binary` is given): output in slot 0, inputs after it."""
  est = Estimates(ops=2 * m * n * k, mem=sum(p.dtype.itemsize * p.max_numel() for p in params))
  info = ProgramInfo(name, (n // TILE_N, m // TILE_M, 1), (threads, 1, 1), (), tuple(range(len(params))), (0,),
                     tuple(range(1, len(params))), Device[device].renderer.target)
  srcs = (UOp.sink(*params, arg=KernelInfo(name=name, estimates=est)), UOp(Ops.LINEAR, src=params), UOp(Ops.SOURCE, arg=source))
  return UOp(Ops.PROGRAM, src=srcs + ((UOp(Ops.BINARY, arg=binary),) if binary is not None else ()), arg=info)


def wgmma_device(device: str) -> bool:
  """Whether fp8 products on `device` take the wgmma kernel: Hopper under DEV=CUDA (on DEV=NV it gave wrong results, not
  understood yet, so NV keeps the mma.sync kernel)."""
  return _sm(device) == 90 and device.split(":")[0] == "CUDA"


def _fp8_program(params: tuple[UOp, ...], name: str, m: int, n: int, k: int, dtype: DType, out_dtype: DType, device: str,
                 fast_accum: bool) -> UOp:
  """The fp8 kernel for the device: wgmma on Hopper under DEV=CUDA (built for sm_90a), mma.sync otherwise (sm_89+)."""
  if not wgmma_device(device): return _program(params, name, kernel_source(name, m, n, k, dtype, out_dtype), m, n, k, device)
  src = wgmma_source(name, m, n, k, dtype, out_dtype, fast_accum)
  lib = _sm90a_compiler(bool(getattr(Device[device].renderer.compiler, "ptx", True))).compile_cached(src)
  return _program(params, name, src, m, n, k, device, WGMMA_THREADS, lib)


def matmul(a: Tensor, b: Tensor) -> Tensor:
  """a @ b (half or bf16, fp32 accumulation) through the pipelined kernel; a clear error where it doesn't fit."""
  if not supported(a, b):
    raise ValueError(f"gemm needs 2-D half/bf16 (M,K)@(K,N) with M,N % 128 == 0 and K % 32 == 0 on a CUDA/NV sm_80+ device, "
                     f"got {a.dtype} {a.shape} @ {b.dtype} {b.shape} on {a.device}")
  (m, k), n, dev = a.shape, b.shape[1], a.device
  name = f"gemm_{MMA_TYPE[a.dtype]}_{m}_{n}_{k}"
  fxn = lambda *p: _program(p, name, kernel_source(name, m, n, k, a.dtype), m, n, k, dev)
  return Tensor.empty(m, n, dtype=a.dtype, device=dev).custom_kernel(a.contiguous(), b.contiguous(), fxn=fxn, grad_fxn=_backward)[0]


def _backward(grad: UOp, call: UOp) -> tuple[UOp | None, ...]:
  """d(a @ b): grad @ b.T for a and a.T @ grad for b (each a matmul that may come back here); none for the output buffer."""
  a, b, g = Tensor(call.src[2]), Tensor(call.src[3]), Tensor(grad)
  return (None, (g @ b.T).uop, (a.T @ g).uop)


def fp8_matmul(a: Tensor, bt: Tensor, scale_a: Tensor, scale_b: Tensor, out_dtype: DType = dtypes.bfloat16, fast_accum: bool = False) -> Tensor:
  """(a @ bt.T) * scale_a * scale_b for fp8 a (M, K) and bt (N, K), fp32 accumulation, through the pipelined fp8 kernel.

  fast_accum (torch's use_fast_accum): on Hopper, let the tensor cores accumulate across K with their fewer bits; faster.
  """
  if not fp8_supported(a, bt, out_dtype):
    raise ValueError(f"fp8 gemm needs (M,K) and (N,K) of one fp8 format with M,N % 128 == 0 and K % 64 == 0 on a CUDA/NV sm_89+ "
                     f"device and a float32/half/bf16 output, got {a.dtype} {a.shape}, {bt.dtype} {bt.shape} -> {out_dtype} on {a.device}")
  (m, k), n, dev = a.shape, bt.shape[0], a.device
  name = f"gemm_{MMA_TYPE[a.dtype]}_{OUT_NAME[out_dtype]}_{m}_{n}_{k}" + ("_fast" if fast_accum else "")
  fxn = lambda *p: _fp8_program(p, name, m, n, k, a.dtype, out_dtype, dev, fast_accum)
  scales = [_buffer_scalar(s, dev) for s in (scale_a, scale_b)]
  return Tensor.empty(m, n, dtype=out_dtype, device=dev).custom_kernel(a.contiguous(), bt.contiguous(), *scales, fxn=fxn)[0]


def _buffer_scalar(s: Tensor, device: str) -> Tensor:
  """A one-element float32 buffer: a kernel input must live in memory, and 0.14.0 folds constant scalars into CONSTs."""
  if s.uop.base.op is Ops.CONST: return Tensor(np.array([s.uop.base.arg], dtype=np.float32), device=device)  # no .item(): a CPU kernel
  return s.cast(dtypes.float32).reshape(1).contiguous()


_saved: dict[str, object] = {}


def _dot(self: Tensor, w: Tensor, dtype=None) -> Tensor:
  if dtype in (None, self.dtype) and supported(self, w): return matmul(self, w)
  return _saved["dot"](self, w, dtype)


def installed() -> bool:
  return bool(_saved)


def install() -> None:
  """Route eligible 2-D half/bf16 `@` / `dot` on CUDA/NV sm_80+ devices to the pipelined kernel. Idempotent."""
  if not _saved: _saved["dot"], Tensor.dot = Tensor.dot, _dot


def uninstall() -> None:
  """Restore stock Tensor.dot (inherited from tinygrad's op mixin again)."""
  if _saved:
    del Tensor.dot
    _saved.clear()
