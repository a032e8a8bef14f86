"""Large 16-bit matmuls on NVIDIA sm_80+ through a pipelined shared-memory tensor-core kernel.

Why stock 0.14.0 sits under 10% of cuBLAS on Hopper: its tensor-core kernels load every mma fragment straight from
global memory (no shared-memory staging, so each element is fetched by many warps and the loads are 4-byte scattered
reads), and nothing overlaps the loads of the next K step with the math of this one. This kernel stages 128x128x32 tiles
through XOR-swizzled shared memory with `cp.async` three tiles deep, feeds `mma.sync` from `ldmatrix`, and writes the
fp32 accumulators back as f16/bf16. It goes into tinygrad as a custom PROGRAM (its own CUDA source, compiled by the
device's own compiler), so it works on DEV=CUDA and DEV=NV, inside TinyJit, and the rest of the graph stays tinygrad's.

`install()` routes `Tensor.dot` / `@` to it for 2-D half/bf16 products whose M, N are multiples of 128 and K of 32 on
CUDA/NV devices of sm_80 or newer (the backward is two more such products); everything else goes to stock tinygrad unchanged.
"""
from __future__ import annotations

import pathlib

from tinygrad import Device, Tensor, dtypes
from tinygrad.renderer import Estimates
from tinygrad.uop.ops import KernelInfo, Ops, ProgramInfo, UOp

SOURCE = (pathlib.Path(__file__).parent / "gemm_sm80.cu").read_text()
TILE_M, TILE_N, TILE_K, THREADS = 128, 128, 32, 128
MMA_TYPE = {dtypes.half: "f16", dtypes.bfloat16: "bf16"}


def _sm(device: str) -> int:
  """The SM version of a device whose renderer compiles CUDA C (CUDA, NV, or NULL:CUDA:sm_XY for rendering); else 0."""
  from tinygrad.renderer.cstyle import CUDARenderer
  ren = Device[device].renderer
  return int(ren.target.arch[3:]) if isinstance(ren, CUDARenderer) and ren.target.arch.startswith("sm_") else 0


def supported(a: Tensor, b: Tensor) -> bool:
  """Whether `a @ b` can run on this kernel: 2-D, same 16-bit dtype, tile-aligned, a device rendering CUDA C for sm_80+."""
  if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype not in MMA_TYPE or a.device != b.device: return False
  if not isinstance(a.device, str) or _sm(a.device) < 80: return False
  (m, k), (k2, n) = a.shape, b.shape
  return all(isinstance(s, int) for s in (m, k, n)) and k == k2 and m % TILE_M == 0 and n % TILE_N == 0 and k % TILE_K == 0


def kernel_source(name: str, m: int, n: int, k: int, dtype) -> str:
  """The CUDA source of one (M, N, K, dtype) instance."""
  return f"#define M {m}\n#define N {n}\n#define K {k}\n" + SOURCE.replace("NAME", name).replace("DT", MMA_TYPE[dtype])


def _program(c: UOp, a: UOp, b: UOp, device: str) -> UOp:
  """A compiled-on-demand PROGRAM for c = a @ b: tinygrad compiles its SOURCE with the device's compiler."""
  (m, k), n = a.shape, b.shape[1]
  name = f"gemm_{MMA_TYPE[a.dtype]}_{m}_{n}_{k}"
  est = Estimates(ops=2 * m * n * k, lds=2 * (m * k + k * n) * (n // TILE_N + m // TILE_M) // 2, mem=2 * (m * k + k * n + m * n))
  params = (c, a, b)
  info = ProgramInfo(name, (n // TILE_N, m // TILE_M, 1), (THREADS, 1, 1), (), (0, 1, 2), (0,), (1, 2), Device[device].renderer.target)
  return UOp(Ops.PROGRAM, src=(UOp.sink(*params, arg=KernelInfo(name=name, estimates=est)), UOp(Ops.LINEAR, src=params),
                               UOp(Ops.SOURCE, arg=kernel_source(name, m, n, k, a.dtype))), arg=info)


def matmul(a: Tensor, b: Tensor) -> Tensor:
  """a @ b through the pipelined tensor-core kernel; a clear error where the shapes or device don't fit it."""
  if not supported(a, b):
    raise ValueError(f"gemm needs 2-D half/bf16 (M,K)@(K,N) with M,N % 128 == 0 and K % 32 == 0 on CUDA/NV sm_80+, "
                     f"got {a.dtype} {a.shape} @ {b.dtype} {b.shape} on {a.device}")
  out = Tensor.empty(a.shape[0], b.shape[1], dtype=a.dtype, device=a.device)
  device = a.device
  return out.custom_kernel(a.contiguous(), b.contiguous(), fxn=lambda c, x, y: _program(c, x, y, device), grad_fxn=_backward)[0]


def _backward(grad: UOp, call: UOp) -> tuple[UOp | None, ...]:
  """d(a @ b): grad @ b.T for a and a.T @ grad for b (each a matmul that may come back here); none for the output buffer."""
  a, b, g = Tensor(call.src[2]), Tensor(call.src[3]), Tensor(grad)
  return (None, (g @ b.T).uop, (a.T @ g).uop)


_saved: dict[str, object] = {}


def _dot(self: Tensor, w: Tensor, dtype=None) -> Tensor:
  if dtype in (None, self.dtype) and supported(self, w): return matmul(self, w)
  return _saved["dot"](self, w, dtype)


def installed() -> bool:
  return bool(_saved)


def install() -> None:
  """Route eligible 2-D half/bf16 `@` / `dot` on CUDA and NV sm_80+ to the pipelined kernel. Idempotent."""
  if not _saved: _saved["dot"], Tensor.dot = Tensor.dot, _dot


def uninstall() -> None:
  """Restore stock Tensor.dot (inherited from tinygrad's op mixin again)."""
  if _saved:
    del Tensor.dot
    _saved.clear()
