"""The aten -> tinygrad op table, and the dtype rules every op family shares: one table serves the eager `tiny` device and the torch.compile backend.

Interface (stable; the compile backend builds on it):
- `@aten("add.Tensor", "add.Scalar")` registers one functional implementation for those aten overloads.
- An implementation takes the overload's arguments as its schema names them: tinygrad `Tensor` where the schema has a
  Tensor (a `Tensor[]` is a list of them, `Tensor?` may be None), Python values elsewhere (int, float, bool, lists,
  `torch.dtype`, `torch.Generator`, None). It returns tinygrad Tensors (a tuple or list where the schema returns
  several). It never mutates its inputs: the eager device derives the in-place (`add_`) and `out=` variants from the
  functional one, and writes the result through views itself.
- Results follow PyTorch's semantics: dtype promotion (`result_dtype`), output shapes, int64 indices.
- `lookup(overload)` returns the implementation for an `OpOverload` (`torch.ops.aten.add.Tensor`) or a name
  (`"add.Tensor"`, `"aten.add.Tensor"`, `"aten::add.Tensor"`; a bare `"relu"` means `"relu.default"`), and raises
  NotImplementedError naming the op and its overload when the table lacks it. `names()` lists every registered one.
- Factory ops create on tinygrad's default device (`DEV`); random ops draw from `tinybounty.torch_backend.random`.
- Composite ops are not written here when PyTorch's own decompositions (torch._decomp) express them with table ops.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from tinygrad import Device, Tensor, dtypes
from tinygrad.dtype import DType, strong_dtype

_TABLE: dict[str, Callable[..., Any]] = {}


def aten(*overloads: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
  """Register `fn` as the implementation of each aten overload named ("add.Tensor"; "relu" means "relu.default")."""
  def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name in overloads: _TABLE[canonical_name(name)] = fn
    return fn
  return deco


def canonical_name(overload: Any) -> str:
  """An overload (`OpOverload` or name) as the table keys it: "op.overload", ".default" when bare."""
  name = overload if isinstance(overload, str) else str(overload)
  name = name.removeprefix("aten::").removeprefix("aten.")
  return name if "." in name else name + ".default"


def lookup(overload: Any) -> Callable[..., Any]:
  """The implementation of an aten overload; NotImplementedError naming the op and overload if there is none."""
  name = canonical_name(overload)
  if (fn := _TABLE.get(name)) is None:
    op, ov = name.split(".", 1)
    raise NotImplementedError(f"tiny: aten::{op} (overload '{ov}') is not implemented on the tinygrad device")
  return fn


def names() -> list[str]:
  """Every overload the table implements, as "op.overload"."""
  return sorted(_TABLE)


# ***** dtypes *****

TORCH_TO_TINY: dict[torch.dtype, DType] = {
  torch.bool: dtypes.bool, torch.uint8: dtypes.uint8, torch.int8: dtypes.int8, torch.int16: dtypes.int16,
  torch.int32: dtypes.int32, torch.int64: dtypes.int64, torch.uint16: dtypes.uint16, torch.uint32: dtypes.uint32,
  torch.uint64: dtypes.uint64, torch.float16: dtypes.float16, torch.bfloat16: dtypes.bfloat16,
  torch.float32: dtypes.float32, torch.float64: dtypes.float64}
TINY_TO_TORCH: dict[DType, torch.dtype] = {v: k for k, v in TORCH_TO_TINY.items()}


def to_tiny_dtype(dtype: torch.dtype) -> DType:
  """The tinygrad dtype for a torch dtype; TypeError naming it if tinygrad has none."""
  if (dt := TORCH_TO_TINY.get(dtype)) is None: raise TypeError(f"tiny: dtype {dtype} is not supported on the tinygrad device")
  return dt


def to_torch_dtype(dtype: DType) -> torch.dtype:
  """The torch dtype of a tinygrad dtype. tinygrad's weak dtypes (an integer tensor met a Python float: weakfloat) take
  the dtype PyTorch gives such a result: its default float dtype, or int64."""
  if dtype == dtypes.weakfloat: return torch.get_default_dtype()
  if dtype == dtypes.weakint: return torch.int64
  if (dt := TINY_TO_TORCH.get(dtype)) is None: dt = TINY_TO_TORCH[strong_dtype(dtype)]
  return dt


def storable(x: Tensor, dtype: torch.dtype) -> Tensor:
  """`x` in the tinygrad dtype of `dtype` if it has one of tinygrad's weak dtypes, which are internal to tinygrad's
  type promotion and never reach a storage (a storage read as another dtype of another size cannot be viewed)."""
  return x.cast(to_tiny_dtype(dtype)) if x.dtype in dtypes.weaks else x


def precise_dtype() -> DType:
  """The dtype iterative algorithms (linalg, special functions) work in: float64 where the device has it."""
  return dtypes.float32 if Device.DEFAULT.split(":")[0] in ("WEBGPU", "METAL", "QCOM") else dtypes.float64


def dtype_category(dt: DType) -> int:
  """PyTorch's promotion categories: 0 bool, 1 integer, 2 floating."""
  return 0 if dt == dtypes.bool else 2 if dtypes.is_float(dt) else 1


def _promote(a: DType | None, b: DType | None) -> DType | None:
  if a is None or b is None: return a if b is None else b
  return TORCH_TO_TINY[torch.promote_types(TINY_TO_TORCH[a], TINY_TO_TORCH[b])]


def _scalar_dtype(v: Any) -> DType:
  return dtypes.bool if isinstance(v, bool) else dtypes.int64 if isinstance(v, int) else to_tiny_dtype(torch.get_default_dtype())


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
  if higher is None: return lower
  if dtypes.is_float(higher): return higher
  if higher == dtypes.bool or (lower is not None and dtypes.is_float(lower)): return _promote(higher, lower)
  return higher


def result_dtype(*args: Any) -> DType:
  """PyTorch's type promotion over tensors and Python scalars: dimensioned tensors, then 0-dim, then scalars."""
  dim = zero = wrapped = None
  for a in args:
    if a is None: continue
    if isinstance(a, Tensor):
      if a.ndim: dim = _promote(dim, a.dtype)
      else: zero = _promote(zero, a.dtype)
    else: wrapped = _promote(wrapped, _scalar_dtype(a))
  return _combine(dim, _combine(zero, wrapped)) or dtypes.float32


def float_dtype(dt: DType) -> DType:
  """`dt` if it is floating, else the default float dtype (what PyTorch's float ops return for integer inputs)."""
  return dt if dtypes.is_float(dt) else to_tiny_dtype(torch.get_default_dtype())


def cast_to(x: Tensor | Any, dt: DType) -> Tensor | Any:
  """`x` cast to `dt` if it is a Tensor; Python scalars pass through."""
  return x.cast(dt) if isinstance(x, Tensor) else x


def reduce_dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
  """Reduction dims as non-negative ints; None or [] means all."""
  if dim is None: return tuple(range(ndim))
  dims = (dim,) if isinstance(dim, int) else tuple(dim)
  return tuple(d % max(ndim, 1) for d in dims) if dims else tuple(range(ndim))


def opmath(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
  """`fn` on float32 copies of half / bfloat16 tensor arguments, its result rounded back once: PyTorch's CPU and CUDA
  kernels compute reduced-precision math in float32 ("opmath"), where tinygrad would round every intermediate."""
  def wrapped(*args: Any, **kwargs: Any) -> Tensor:
    low = {a.dtype for a in args if isinstance(a, Tensor)}
    if len(low) != 1 or (low := low.pop()) not in (dtypes.half, dtypes.bfloat16): return fn(*args, **kwargs)  # mixed dtypes promote
    out = fn(*(a.cast(dtypes.float32) if isinstance(a, Tensor) else a for a in args), **kwargs)
    return out.cast(low) if out.dtype == dtypes.float32 else out
  return wrapped
