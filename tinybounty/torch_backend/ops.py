"""The aten -> tinygrad op table: one table serves the eager `tiny` device and the torch.compile backend.

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

import functools
import math
import os
from typing import Any, Callable, Sequence

import torch
from tinygrad import Device, Tensor, dtypes
from tinygrad.dtype import DType, strong_dtype

from tinybounty.torch_backend.compaction import compact
from tinybounty.torch_backend.random import key_for
from tinybounty.torch_backend.scalars import buffered, device_scalar
from tinybounty.torch_backend.scatter import scatter as scatter_last
from tinybounty.torch_backend.stats import size_sync, to_host
from tinybounty.torch_backend.strided import SMALL_WRITE, strided_read, strided_write

_TABLE: dict[str, Callable[..., Any]] = {}


def aten(*overloads: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
  """Register `fn` as the implementation of each aten overload named ("add.Tensor"; "relu" means "relu.default")."""
  def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name in overloads: _TABLE[_canonical(name)] = fn
    return fn
  return deco


def _canonical(overload: Any) -> str:
  name = overload if isinstance(overload, str) else str(overload)
  name = name.removeprefix("aten::").removeprefix("aten.")
  return name if "." in name else name + ".default"


def lookup(overload: Any) -> Callable[..., Any]:
  """The implementation of an aten overload; NotImplementedError naming the op and overload if there is none."""
  name = _canonical(overload)
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
  """The torch dtype of a tinygrad dtype (tinygrad's weak/default dtypes map to their strong twins)."""
  if (dt := TINY_TO_TORCH.get(dtype)) is None: dt = TINY_TO_TORCH[strong_dtype(dtype)]
  return dt


def precise_dtype() -> DType:
  """The dtype iterative algorithms (linalg, special functions) work in: float64 where the device has it."""
  return dtypes.float32 if Device.DEFAULT.split(":")[0] in ("WEBGPU", "METAL", "QCOM") else dtypes.float64


def _category(dt: DType) -> int:
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


def _float(dt: DType) -> DType:
  return dt if dtypes.is_float(dt) else to_tiny_dtype(torch.get_default_dtype())


def _cast(x: Tensor | Any, dt: DType) -> Tensor | Any:
  return x.cast(dt) if isinstance(x, Tensor) else x


def _dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
  """Reduction dims as non-negative ints; None or [] means all."""
  if dim is None: return tuple(range(ndim))
  dims = (dim,) if isinstance(dim, int) else tuple(dim)
  return tuple(d % max(ndim, 1) for d in dims) if dims else tuple(range(ndim))


# ***** elementwise *****

def _opmath(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
  """`fn` on float32 copies of half / bfloat16 tensor arguments, its result rounded back once: PyTorch's CPU and CUDA
  kernels compute reduced-precision math in float32 ("opmath"), where tinygrad would round every intermediate."""
  def wrapped(*args: Any, **kwargs: Any) -> Tensor:
    low = {a.dtype for a in args if isinstance(a, Tensor)}
    if len(low) != 1 or (low := low.pop()) not in (dtypes.half, dtypes.bfloat16): return fn(*args, **kwargs)  # mixed dtypes promote
    out = fn(*(a.cast(dtypes.float32) if isinstance(a, Tensor) else a for a in args), **kwargs)
    return out.cast(low) if out.dtype == dtypes.float32 else out
  return wrapped


def _unary(fn: Callable[[Tensor], Tensor], floating: bool = True) -> Callable[..., Tensor]:
  return _opmath(lambda self: fn(self.cast(_float(self.dtype)))) if floating else fn


for _name, _fn in {"exp": Tensor.exp, "exp2": Tensor.exp2, "log": Tensor.log, "log2": Tensor.log2, "sqrt": Tensor.sqrt,
                   "rsqrt": Tensor.rsqrt, "sin": Tensor.sin, "cos": Tensor.cos, "asin": Tensor.asin,
                   "tan": lambda x: x.cast(precise_dtype()).tan().cast(x.dtype),      # float32 tan loses digits near its poles
                   "acos": Tensor.acos, "atan": Tensor.atan, "sinh": Tensor.sinh, "cosh": Tensor.cosh, "tanh": Tensor.tanh,
                   "asinh": Tensor.asinh, "acosh": Tensor.acosh, "atanh": Tensor.atanh, "sigmoid": Tensor.sigmoid,
                   "erf": Tensor.erf, "reciprocal": Tensor.reciprocal, "log10": lambda x: x.log2() * math.log10(2),
                   "log1p": lambda x: (x + 1).log(), "expm1": lambda x: x.exp() - 1, "silu": Tensor.silu,
                   "mish": Tensor.mish, "hardswish": Tensor.hardswish, "hardsigmoid": Tensor.hardsigmoid,
                   "logsigmoid": Tensor.logsigmoid, "log_sigmoid": Tensor.logsigmoid, "erfc": lambda x: 1 - x.erf(),
                   "deg2rad": lambda x: x * (math.pi / 180), "rad2deg": lambda x: x * (180 / math.pi),
                   "sinc": lambda x: x.eq(0).where(1, (x * math.pi).sin() / (x * math.pi))}.items():
  aten(_name)(_unary(_fn))
for _name, _fn in {"abs": Tensor.abs, "neg": Tensor.neg, "relu": Tensor.relu, "sign": Tensor.sign, "floor": Tensor.floor,
                   "ceil": Tensor.ceil, "trunc": Tensor.trunc, "round": lambda x: x.round() if dtypes.is_float(x.dtype) else x,
                   "bitwise_not": lambda x: x.logical_not() if x.dtype == dtypes.bool else x.bitwise_not(),
                   "logical_not": lambda x: x.cast(dtypes.bool).logical_not(), "isnan": Tensor.isnan,
                   "isinf": Tensor.isinf, "isfinite": Tensor.isfinite, "square": lambda x: x * x,
                   "frac": lambda x: x - x.trunc(), "positive": lambda x: x, "sgn": Tensor.sign,
                   "signbit": lambda x: x.const_like(False) if x.dtype == dtypes.bool else (x < 0) | (x.eq(0) & ((1 / x.cast(_float(x.dtype))) < 0))
                   }.items():
  aten(_name)(_unary(_fn, floating=False))


def _gelu(x: Tensor, approximate: str) -> Tensor:
  return x.gelu() if approximate == "tanh" else 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


@aten("gelu")
@_opmath
def gelu(self: Tensor, approximate: str = "none") -> Tensor: return _gelu(self.cast(_float(self.dtype)), approximate)


@aten("gelu_backward")
@_opmath
def gelu_backward(grad_output: Tensor, self: Tensor, *, approximate: str = "none") -> Tensor:
  x, g = self.cast(_float(self.dtype)), grad_output.cast(_float(self.dtype))
  if approximate == "tanh": return _gelu(x, approximate).gradient(x, gradient=g)[0]
  return g * (0.5 * (1 + (x * (1 / math.sqrt(2))).erf()) + x * (-0.5 * x * x).exp() * (1 / math.sqrt(2 * math.pi)))


@aten("leaky_relu")
def leaky_relu(self: Tensor, negative_slope: float = 0.01) -> Tensor: return self.leaky_relu(negative_slope)


@aten("hardtanh")
def hardtanh(self: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor: return self.clamp(min_val, max_val)


@aten("elu")
def elu(self: Tensor, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0) -> Tensor:
  x = self * input_scale
  return scale * (x > 0).where(x, alpha * (x.exp() - 1))


@aten("softplus")
def softplus(self: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
  return (self * beta > threshold).where(self, (1 + (self * beta).exp()).log() / beta)


@aten("threshold")
def threshold(self: Tensor, threshold: float, value: float) -> Tensor: return (self > threshold).where(self, value)


@aten("threshold_backward")
def threshold_backward(grad_output: Tensor, self: Tensor, threshold: float) -> Tensor:
  return (self > threshold).where(grad_output, 0)


def _binary(fn: Callable[[Any, Any], Tensor], out: Callable[[DType], DType] = lambda dt: dt, scalars_on_device: bool = False
            ) -> Callable[..., Tensor]:
  """`scalars_on_device`: a Python float operand is read from device memory (scalars.py), for arithmetic that a
  training loop feeds changing values (an EMA's decay, a schedule's factor)."""
  def impl(self: Any, other: Any) -> Tensor:
    dt = result_dtype(self, other)
    a, b = _cast(self, out(dt)), _cast(other, out(dt))
    if scalars_on_device: a, b = buffered(a, b), buffered(b, a)
    if not isinstance(a, Tensor): a = Tensor(a, dtype=out(dt)) if not isinstance(b, Tensor) else b.const_like(a)
    return fn(a, b)
  return impl


for _name, _fn in {"mul": lambda a, b: a & b if a.dtype == dtypes.bool else a * b,
                   "maximum": Tensor.maximum, "minimum": Tensor.minimum, "fmax": Tensor.maximum, "fmin": Tensor.minimum,
                   "bitwise_and": Tensor.bitwise_and, "bitwise_or": Tensor.bitwise_or, "bitwise_xor": Tensor.bitwise_xor,
                   "remainder": lambda a, b: a - a.div(b, rounding_mode="floor") * b if dtypes.is_float(a.dtype) else a.mod(b),
                   "fmod": lambda a, b: a - a.div(b, rounding_mode="trunc") * b,
                   "__and__": Tensor.bitwise_and, "__or__": Tensor.bitwise_or, "__xor__": Tensor.bitwise_xor,
                   "copysign": lambda a, b: ((b < 0) | (b.eq(0) & ((1 / b) < 0))).where(-a.abs(), a.abs()),
                   "atan2": lambda a, b: _atan2(a, b), "hypot": lambda a, b: (a * a + b * b).sqrt(),
                   "logaddexp": Tensor.logaddexp, "xlogy": lambda a, b: a.eq(0).where(0, a * b.log())}.items():
  aten(f"{_name}.Tensor", f"{_name}.Scalar", _name if _name in ("maximum", "minimum", "fmax", "fmin", "atan2", "hypot", "logaddexp")
       else f"{_name}.default")(_binary(_fn, (lambda dt: dt) if _name not in ("atan2", "hypot", "logaddexp", "xlogy") else _float,
                                        scalars_on_device=_name == "mul"))
for _name, _fn in {"eq": Tensor.eq, "ne": Tensor.ne, "lt": Tensor.__lt__, "le": Tensor.__le__, "gt": Tensor.__gt__,
                   "ge": Tensor.__ge__, "logical_and": lambda a, b: a.cast(dtypes.bool) & b.cast(dtypes.bool),
                   "logical_or": lambda a, b: a.cast(dtypes.bool) | b.cast(dtypes.bool),
                   "logical_xor": lambda a, b: a.cast(dtypes.bool) ^ b.cast(dtypes.bool)}.items():
  aten(f"{_name}.Tensor", f"{_name}.Scalar", f"{_name}.default")(_binary(_fn))


def _atan2(a: Tensor, b: Tensor) -> Tensor:
  base = (a / b).atan()
  return b.eq(0).where(a.sign() * (math.pi / 2), (b < 0).where(base + (a >= 0).where(math.pi, -math.pi), base))


def _scaled(b: Tensor, alpha: Any) -> Tensor:
  """b * alpha. A float alpha (an optimizer's learning rate, which a schedule changes every step) is read from a
  device buffer rather than compiled into the kernel, so a new value reuses the kernel instead of compiling another."""
  if alpha == 1: return b
  return b * buffered(alpha, b)


@aten("add.Tensor", "add.Scalar")
def add(self: Any, other: Any, alpha: Any = 1) -> Tensor:
  dt = result_dtype(self, other)
  if dt == dtypes.bool: return _binary(lambda a, b: a | b)(self, other)
  # a + alpha * b rounds once, like PyTorch (an optimizer's update of half parameters would otherwise round twice)
  return _opmath(_binary(lambda a, b: a + _scaled(b, alpha)))(self, other) if alpha != 1 else _binary(Tensor.add, scalars_on_device=True)(self, other)


@aten("sub.Tensor", "sub.Scalar")
def sub(self: Any, other: Any, alpha: Any = 1) -> Tensor:
  return _opmath(_binary(lambda a, b: a - _scaled(b, alpha)))(self, other) if alpha != 1 else _binary(Tensor.sub, scalars_on_device=True)(self, other)


@aten("rsub.Tensor", "rsub.Scalar")
def rsub(self: Any, other: Any, alpha: Any = 1) -> Tensor: return sub(other, self, alpha)


@aten("div.Tensor", "div.Scalar")
def div(self: Any, other: Any) -> Tensor: return _binary(lambda a, b: a / b, _float, scalars_on_device=True)(self, other)


@aten("div.Tensor_mode", "div.Scalar_mode")
def div_mode(self: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
  if rounding_mode is None: return div(self, other)
  dt = result_dtype(self, other)
  if dtypes.is_float(dt): return _binary(lambda a, b: (a / b).floor() if rounding_mode == "floor" else (a / b).trunc())(self, other)
  return _binary(lambda a, b: a.div(b, rounding_mode=rounding_mode))(self, other)


@aten("floor_divide", "floor_divide.Scalar")
def floor_divide(self: Any, other: Any) -> Tensor: return div_mode(self, other, rounding_mode="floor")


@aten("pow.Tensor_Tensor", "pow.Tensor_Scalar", "pow.Scalar")
def pow_(self: Any, exponent: Any) -> Tensor:
  dt = result_dtype(self, exponent)
  if not isinstance(self, Tensor): return exponent.const_like(self).cast(dt).pow(exponent.cast(dt))
  if not isinstance(exponent, Tensor) and exponent == 2: return self.cast(dt) * self.cast(dt)
  return self.cast(dt).pow(_cast(exponent, dt))


@aten("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def where(condition: Tensor, self: Any, other: Any) -> Tensor:
  dt = result_dtype(self, other)
  return condition.cast(dtypes.bool).where(_cast(self, dt), _cast(other, dt)).cast(dt)


@aten("masked_fill.Scalar", "masked_fill.Tensor")
def masked_fill(self: Tensor, mask: Tensor, value: Any) -> Tensor: return mask.where(_cast(value, self.dtype), self).cast(self.dtype)


@aten("clamp", "clamp.Tensor")
def clamp(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
  dt = result_dtype(self, min, max)
  x = self.cast(dt)
  if min is not None: x = x.maximum(_cast(min, dt))
  if max is not None: x = x.minimum(_cast(max, dt))
  return x


@aten("clamp_min", "clamp_min.Tensor")
def clamp_min(self: Tensor, min: Any) -> Tensor: return clamp(self, min=min)


@aten("clamp_max", "clamp_max.Tensor")
def clamp_max(self: Tensor, max: Any) -> Tensor: return clamp(self, max=max)


@aten("lerp.Scalar", "lerp.Tensor")
@_opmath
def lerp(self: Tensor, end: Tensor, weight: Any) -> Tensor: return self + (end - self) * weight


@aten("addcmul")
@_opmath
def addcmul(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
  return add(self, mul_(tensor1, tensor2), alpha=value)


@aten("addcdiv")
@_opmath
def addcdiv(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
  return add(self, div(tensor1, tensor2), alpha=value)


def mul_(a: Any, b: Any) -> Tensor: return lookup("mul.Tensor")(a, b)


@aten("sigmoid_backward")
@_opmath
def sigmoid_backward(grad_output: Tensor, output: Tensor) -> Tensor: return grad_output * output * (1 - output)


@aten("tanh_backward")
@_opmath
def tanh_backward(grad_output: Tensor, output: Tensor) -> Tensor: return grad_output * (1 - output * output)


# ***** reductions *****

def _acc_dtype(x: Tensor, dtype: torch.dtype | None) -> DType:
  if dtype is not None: return to_tiny_dtype(dtype)
  return dtypes.int64 if _category(x.dtype) < 2 else x.dtype


@aten("sum", "sum.dim_IntList")
def sum_(self: Tensor, dim: Sequence[int] | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
  return self.cast(_acc_dtype(self, dtype)).sum(_dims(dim, self.ndim), keepdim=keepdim)


@aten("mean", "mean.dim")
def mean(self: Tensor, dim: Sequence[int] | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
  x = self.cast(to_tiny_dtype(dtype) if dtype is not None else self.dtype)
  if not dtypes.is_float(x.dtype): raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got {x.dtype}")
  return x.mean(_dims(dim, self.ndim), keepdim=keepdim)


@aten("prod", "prod.dim_int")
def prod(self: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
  return self.cast(_acc_dtype(self, dtype)).prod(_dims(dim, self.ndim), keepdim=keepdim)


@aten("amax")
def amax(self: Tensor, dim: Sequence[int] = (), keepdim: bool = False) -> Tensor: return self.max(_dims(dim, self.ndim), keepdim=keepdim)


@aten("amin")
def amin(self: Tensor, dim: Sequence[int] = (), keepdim: bool = False) -> Tensor: return self.min(_dims(dim, self.ndim), keepdim=keepdim)


aten("max")(lambda self: self.max())
aten("min")(lambda self: self.min())


@aten("max.dim")
def max_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  return self.max(dim, keepdim=keepdim), argmax(self, dim, keepdim)


@aten("min.dim")
def min_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  return self.min(dim, keepdim=keepdim), argmin(self, dim, keepdim)


@aten("argmax")
def argmax(self: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
  if self.ndim == 0: return Tensor(0, dtype=dtypes.int64)
  out = self.argmax(dim, keepdim=keepdim).cast(dtypes.int64)
  return out.reshape((1,) * self.ndim) if dim is None and keepdim else out


@aten("argmin")
def argmin(self: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
  if self.ndim == 0: return Tensor(0, dtype=dtypes.int64)
  out = self.argmin(dim, keepdim=keepdim).cast(dtypes.int64)
  return out.reshape((1,) * self.ndim) if dim is None and keepdim else out


@aten("any", "any.dim", "any.dims")
def any_(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
  return self.cast(dtypes.bool).any(_dims(dim, self.ndim), keepdim=keepdim)


@aten("all", "all.dim", "all.dims")
def all_(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
  return self.cast(dtypes.bool).all(_dims(dim, self.ndim), keepdim=keepdim)


@aten("var.correction")
def var(self: Tensor, dim: Sequence[int] | None = None, *, correction: float | None = None, keepdim: bool = False) -> Tensor:
  return self.var(_dims(dim, self.ndim), keepdim=keepdim, correction=1 if correction is None else correction)


@aten("var_mean.correction")
def var_mean(self: Tensor, dim: Sequence[int] | None = None, *, correction: float | None = None, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  return var(self, dim, correction=correction, keepdim=keepdim), self.mean(_dims(dim, self.ndim), keepdim=keepdim)


@aten("std.correction")
def std(self: Tensor, dim: Sequence[int] | None = None, *, correction: float | None = None, keepdim: bool = False) -> Tensor:
  return var(self, dim, correction=correction, keepdim=keepdim).sqrt()


@aten("cumsum")
def cumsum(self: Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Tensor:
  x = self.cast(_acc_dtype(self, dtype))
  return x.cumsum(dim) if x.ndim else x


@aten("logsumexp")
def logsumexp(self: Tensor, dim: Sequence[int], keepdim: bool = False) -> Tensor:
  x, dims = self.cast(_float(self.dtype)), _dims(dim, self.ndim)
  if x.ndim == 0: return x
  m = x.max(dims, keepdim=True)
  m = m.isinf().where(0, m)
  out = (x - m).exp().sum(dims, keepdim=True).log() + m
  return out if keepdim else out.reshape(tuple(n for i, n in enumerate(x.shape) if i not in dims))


@aten("_logcumsumexp")
def logcumsumexp(self: Tensor, dim: int) -> Tensor: return self.logcumsumexp(dim) if self.ndim else self


def _to_float_if(x: Tensor, half_to_float: bool) -> Tensor: return x.cast(dtypes.float32) if half_to_float else x


@aten("_softmax")
def softmax(self: Tensor, dim: int, half_to_float: bool) -> Tensor:
  return _to_float_if(_opmath(lambda x: x.softmax(dim) if x.ndim else x.const_like(1))(self), half_to_float)


@aten("_log_softmax")
def log_softmax(self: Tensor, dim: int, half_to_float: bool) -> Tensor:
  return _to_float_if(_opmath(lambda x: x.log_softmax(dim) if x.ndim else x.const_like(0))(self), half_to_float)


@aten("_softmax_backward_data")
@_opmath
def softmax_backward(grad_output: Tensor, output: Tensor, dim: int, input_dtype: torch.dtype) -> Tensor:
  return (output * (grad_output - (grad_output * output).sum(dim, keepdim=True))).cast(to_tiny_dtype(input_dtype))


@aten("_log_softmax_backward_data")
@_opmath
def log_softmax_backward(grad_output: Tensor, output: Tensor, dim: int, input_dtype: torch.dtype) -> Tensor:
  return (grad_output - output.exp() * grad_output.sum(dim, keepdim=True)).cast(to_tiny_dtype(input_dtype))


# ***** linear algebra and nn *****

# Products of half / bfloat16 operands are exact in PyTorch's GEMMs and convolutions (float32 accumulation of exact
# products, one rounding at the end); tinygrad's kernels without tensor cores round each product to half first.
# Float32 operands also keep tinygrad from its half tensor cores: TINY_HALF_PRODUCTS=half trades exactness for them.
EXACT_HALF_PRODUCTS = os.environ.get("TINY_HALF_PRODUCTS", "exact") != "half"


def _gemm(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
  exact = _opmath(fn)
  return functools.wraps(fn)(lambda *args, **kwargs: (exact if EXACT_HALF_PRODUCTS else fn)(*args, **kwargs))


@aten("mm", "bmm", "matmul")
@_gemm
def mm(self: Tensor, mat2: Tensor) -> Tensor: return self.matmul(mat2)


@aten("matmul_backward")
def matmul_backward(grad: Tensor, self: Tensor, other: Tensor, mask: Sequence[bool]) -> tuple[Tensor | None, Tensor | None]:
  a, b = self.detach(), other.detach()
  ga, gb = _gemm(Tensor.matmul)(a, b).gradient(a, b, gradient=grad)
  return (ga if mask[0] else None), (gb if mask[1] else None)


@aten("mv")
@_gemm
def mv(self: Tensor, vec: Tensor) -> Tensor: return self.matmul(vec)


@aten("dot", "vdot")
@_gemm
def dot(self: Tensor, tensor: Tensor) -> Tensor: return (self * tensor).sum()


@aten("addmm", "baddbmm")
@_gemm
def addmm(self: Tensor, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
  prod_ = mat1.matmul(mat2)
  if alpha != 1: prod_ = prod_ * alpha
  return prod_ if beta == 0 else prod_ + (self * beta if beta != 1 else self)


def _conv(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
          transposed: bool, output_padding: Sequence[int], groups: int) -> Tensor:
  if EXACT_HALF_PRODUCTS and input.dtype in (dtypes.half, dtypes.bfloat16) and input.dtype == weight.dtype:
    return _conv(input.float(), weight.float(), None if bias is None else bias.float(), stride, padding, dilation, transposed,
                 output_padding, groups).cast(input.dtype)
  if transposed:
    return input.conv_transpose2d(weight, bias, groups=groups, stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding),
                                  output_padding=tuple(output_padding))
  return input.conv2d(weight, bias, groups=groups, stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding))


@aten("convolution")
def convolution(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int], padding: Sequence[int],
                dilation: Sequence[int], transposed: bool, output_padding: Sequence[int], groups: int) -> Tensor:
  return _conv(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)


@aten("convolution_backward")
def convolution_backward(grad_output: Tensor, input: Tensor, weight: Tensor, bias_sizes: Sequence[int] | None, stride: Sequence[int],
                         padding: Sequence[int], dilation: Sequence[int], transposed: bool, output_padding: Sequence[int], groups: int,
                         output_mask: Sequence[bool]) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
  out = _conv(input, weight, None, stride, padding, dilation, transposed, output_padding, groups)
  wanted = [t for t, m in zip((input, weight), output_mask[:2]) if m]
  grads = iter(out.gradient(*wanted, gradient=grad_output) if wanted else [])
  gi = next(grads) if output_mask[0] else None
  gw = next(grads) if output_mask[1] else None
  gb = grad_output.sum([0, *range(2, grad_output.ndim)]) if output_mask[2] else None
  return gi, gw, gb


def _pool_args(kernel_size: Sequence[int], stride: Sequence[int], padding: Any, dilation: Any, nd: int = 2) -> tuple:
  def full(v: Any) -> tuple: return tuple(v) * (nd // len(v)) if isinstance(v, (list, tuple)) else (v,) * nd
  k = full(kernel_size)
  return k, full(stride) if stride else k, full(padding), full(dilation)


@aten("max_pool2d_with_indices")
def max_pool2d_with_indices(self: Tensor, kernel_size: Sequence[int], stride: Sequence[int] = (), padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False) -> tuple[Tensor, Tensor]:
  k, s, p, d = _pool_args(kernel_size, stride, padding, dilation)
  out, idx = self.max_pool2d(k, s, d, p, ceil_mode=ceil_mode, return_indices=True)
  return out, idx.cast(dtypes.int64)


def _unpool_grad(grad_output: Tensor, self: Tensor, indices: Tensor, nd: int) -> Tensor:
  """Route each output gradient to the input position its index names (summing where windows overlap)."""
  spatial, lead = math.prod(self.shape[-nd:]), grad_output.shape[:-nd]
  g, i = grad_output.reshape(*lead, -1, 1), indices.reshape(*lead, -1, 1)
  onehot = i == Tensor.arange(spatial, dtype=i.dtype).reshape(1, spatial)
  return (onehot.where(g, 0)).sum(-2).reshape(self.shape).cast(self.dtype)


@aten("max_pool2d_with_indices_backward")
def max_pool2d_with_indices_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                                     padding: Any, dilation: Any, ceil_mode: bool, indices: Tensor) -> Tensor:
  return _unpool_grad(grad_output, self, indices, 2)


@aten("max_pool3d_with_indices_backward")
def max_pool3d_with_indices_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                                     padding: Any, dilation: Any, ceil_mode: bool, indices: Tensor) -> Tensor:
  return _unpool_grad(grad_output, self, indices, 3)


@aten("avg_pool2d")
def avg_pool2d(self: Tensor, kernel_size: Sequence[int], stride: Sequence[int] = (), padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
  k, s, p, _ = _pool_args(kernel_size, stride, padding, 1)
  if divisor_override is not None: return _sum_pool(self, k, s, p, ceil_mode) / divisor_override
  return self.avg_pool2d(k, s, 1, p, ceil_mode, count_include_pad)


def _sum_pool(x: Tensor, k: tuple, s: tuple, p: tuple, ceil_mode: bool) -> Tensor:
  """Window sums over the last len(k) dims with PyTorch's output size (ceil_mode windows must start inside the input
  or left padding)."""
  nd, out = len(k), []
  for size, kk, ss, pp in zip(x.shape[-nd:], k, s, p):
    n = -(-(size + 2 * pp - kk) // ss) + 1 if ceil_mode else (size + 2 * pp - kk) // ss + 1
    if ceil_mode and (n - 1) * ss >= size + pp: n -= 1
    out.append(n)
  extra = [max(0, (n - 1) * ss + kk - (size + 2 * pp)) for n, size, kk, ss, pp in zip(out, x.shape[-nd:], k, s, p)]
  xp = x.pad(((0, 0),) * (x.ndim - nd) + tuple((pp, pp + e) for pp, e in zip(p, extra)))
  return xp._pool(k, s).sum(tuple(range(-nd, 0)))[(...,) + tuple(slice(0, n) for n in out)]


@aten("avg_pool2d_backward")
def avg_pool2d_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Any,
                        ceil_mode: bool, count_include_pad: bool, divisor_override: int | None) -> Tensor:
  x = self.detach()
  out = avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
  return out.gradient(x, gradient=grad_output)[0]


def _adaptive_weights(size: int, out: int, dtype: DType) -> Tensor:
  """(out, size) averaging matrix: row i averages [floor(i*size/out), ceil((i+1)*size/out))."""
  rows = []
  for i in range(out):
    lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
    rows.append([1 / (hi - lo) if lo <= j < hi else 0.0 for j in range(size)])
  return Tensor(rows, dtype=dtype)


@aten("_adaptive_avg_pool2d")
def adaptive_avg_pool2d(self: Tensor, output_size: Sequence[int]) -> Tensor:
  h, w = self.shape[-2:]
  oh, ow = output_size
  if h % oh == 0 and w % ow == 0: return self.avg_pool2d((h // oh, w // ow))
  return _adaptive_weights(h, oh, self.dtype) @ self @ _adaptive_weights(w, ow, self.dtype).T


@aten("_adaptive_avg_pool2d_backward")
def adaptive_avg_pool2d_backward(grad_output: Tensor, self: Tensor) -> Tensor:
  x = self.detach()
  return adaptive_avg_pool2d(x, grad_output.shape[-2:]).gradient(x, gradient=grad_output)[0]


@aten("embedding")
def embedding(weight: Tensor, indices: Tensor, padding_idx: int = -1, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
  return _take_rows(weight, indices)


# ***** indexing: gather/scatter through one-hot compares, all on the device *****

def _take_rows(x: Tensor, index: Tensor) -> Tensor:
  """x[index] along dim 0 for an int index tensor of any shape (negative indices wrap)."""
  idx = index.cast(dtypes.int32)
  idx = (idx < 0).where(idx + x.shape[0], idx)
  return x[idx]


def _nonzero_count(mask: Tensor) -> int:
  """The number of True elements: the one scalar a data-dependent output shape needs (counted as a size sync)."""
  return size_sync(mask.cast(dtypes.int32).sum())


def _nonzero(mask: Tensor) -> list[Tensor]:
  """One int64 index tensor per dim of `mask`, listing the True positions in row-major order."""
  flat = mask.reshape(-1).cast(dtypes.bool)
  n = _nonzero_count(flat)
  if n == 0: return [Tensor.empty(0, dtype=dtypes.int64) for _ in range(max(mask.ndim, 1))]
  pos = compact(flat, n).cast(dtypes.int64)
  out, div_ = [], 1
  for size in reversed(mask.shape):
    out.append((pos // div_) % size)
    div_ *= size
  return out[::-1] if mask.ndim else [pos]


@aten("nonzero")
def nonzero(self: Tensor) -> Tensor:
  idx = _nonzero(self.cast(dtypes.bool))
  return Tensor.stack(*idx, dim=1) if self.ndim else Tensor.empty(idx[0].shape[0], 0, dtype=dtypes.int64)


@aten("masked_select")
def masked_select(self: Tensor, mask: Tensor) -> Tensor:
  shape = tuple(torch.broadcast_shapes(tuple(self.shape), tuple(mask.shape)))
  x, m = self.expand(shape) if shape else self, mask.expand(shape) if shape else mask
  flat = m.reshape(-1).cast(dtypes.bool)
  n = _nonzero_count(flat)
  return compact(flat, n, x.reshape(-1)) if n else Tensor.empty(0, dtype=self.dtype)


def _expand_bool(self: Tensor, indices: Sequence[Tensor | None]) -> list[Tensor | None]:
  out: list[Tensor | None] = []
  for ix in indices:
    if ix is not None and ix.dtype in (dtypes.bool, dtypes.uint8): out.extend(_nonzero(ix))
    else: out.append(ix)
  return out + [None] * (self.ndim - len(out))


def _linear_index(self: Tensor, indices: list[Tensor | None]) -> tuple[Tensor, list[int], list[int], bool]:
  """Advanced indexing reduced to rows: (flat row index over the indexed dims, indexed dims, other dims, adjacent)."""
  dims = [d for d, ix in enumerate(indices) if ix is not None]
  rest = [d for d in range(self.ndim) if d not in dims]
  shape = tuple(torch.broadcast_shapes(*(tuple(indices[d].shape) for d in dims)))
  lin = Tensor.zeros(*shape, dtype=dtypes.int32) if shape else Tensor(0, dtype=dtypes.int32)
  for d in dims:
    ix = indices[d].cast(dtypes.int32)
    lin = lin * self.shape[d] + (ix < 0).where(ix + self.shape[d], ix).expand(shape)
  return lin, dims, rest, dims == list(range(dims[0], dims[-1] + 1))


@aten("index.Tensor", "_unsafe_index.Tensor")
def index(self: Tensor, indices: Sequence[Tensor | None]) -> Tensor:
  full = _expand_bool(self, indices)
  if all(ix is None for ix in full): return self
  lin, dims, rest, adjacent = _linear_index(self, full)
  rows = self.permute(*dims, *rest).reshape(math.prod(self.shape[d] for d in dims), *(self.shape[d] for d in rest))
  out = _take_rows(rows, lin) if lin.numel() else Tensor.empty(*lin.shape, *rows.shape[1:], dtype=self.dtype)
  if adjacent and dims[0] > 0:  # torch keeps the indexed block in place when the advanced indices are adjacent
    nb = lin.ndim
    order = list(range(nb, nb + dims[0])) + list(range(nb)) + list(range(nb + dims[0], out.ndim))
    out = out.permute(*order)
  return out


@aten("index_put", "_index_put_impl", "_unsafe_index_put")
def index_put(self: Tensor, indices: Sequence[Tensor | None], values: Tensor, accumulate: bool = False, unsafe: bool = False) -> Tensor:
  if (len(indices) == 1 and indices[0] is not None and indices[0].dtype == dtypes.bool and values.numel() == 1
      and tuple(indices[0].shape) == tuple(self.shape[:indices[0].ndim])):  # x[mask] = v needs no nonzero
    m = indices[0].reshape(*indices[0].shape, *(1,) * (self.ndim - indices[0].ndim))
    v = values.reshape(()).cast(self.dtype)
    return m.where(self + v if accumulate else v, self)
  full = _expand_bool(self, indices)
  lin, dims, rest, adjacent = _linear_index(self, full)
  nrows, rest_shape = math.prod(self.shape[d] for d in dims), tuple(self.shape[d] for d in rest)
  rows = self.permute(*dims, *rest).reshape(nrows, *rest_shape)
  # values are shaped like self[indices]: bring the index block to the front
  target = index_shape(lin.shape, dims, rest_shape, adjacent)
  vals = values.cast(self.dtype).expand(target) if target else values.cast(self.dtype)
  if adjacent and dims[0] > 0:
    nb = lin.ndim
    vals = vals.permute(*range(dims[0], dims[0] + nb), *range(dims[0]), *range(dims[0] + nb, vals.ndim))
  n = lin.numel()
  if n == 0: return self
  vals = vals.reshape(n, -1)
  hit = lin.reshape(n, 1).eq(Tensor.arange(nrows, dtype=dtypes.int32).reshape(1, nrows))  # (n, rows)
  flat_rows = rows.reshape(nrows, -1)
  if accumulate:
    upd = hit.unsqueeze(-1).where(vals.unsqueeze(1), 0).sum(0).cast(self.dtype)
    new_rows = flat_rows + upd
  else:  # duplicates: the last write wins, as on the CPU
    last = hit.where(Tensor.arange(1, n + 1, dtype=dtypes.int32).reshape(n, 1), 0).max(0)
    chosen = _take_rows(vals, (last - 1).maximum(0))
    new_rows = (last > 0).unsqueeze(-1).where(chosen, flat_rows)
  out = new_rows.reshape(*(self.shape[d] for d in dims), *rest_shape)
  return out.permute(*sorted(range(self.ndim), key=lambda i: (dims + rest)[i]))


def index_shape(batch: Sequence[int], dims: list[int], rest_shape: tuple[int, ...], adjacent: bool) -> tuple[int, ...]:
  """The shape of self[indices]: the broadcast index block in place of adjacent indexed dims, else in front."""
  if adjacent and dims[0] > 0: return (*rest_shape[:dims[0]], *batch, *rest_shape[dims[0]:])
  return (*batch, *rest_shape)


@aten("index_select")
def index_select(self: Tensor, dim: int, index: Tensor) -> Tensor:
  if self.ndim == 0: return self
  return _take_rows(self.transpose(0, dim), index.reshape(-1)).transpose(0, dim)


@aten("gather")
def gather(self: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
  if index.numel() == 0: return Tensor.empty(*index.shape, dtype=self.dtype)
  return self.gather(dim, index.cast(dtypes.int32)) if self.ndim else self


def _zero_dim_as_1d(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
  """PyTorch scatters into a 0-d tensor along dim 0; tinygrad's scatters need a real dim: run them at shape (1,)."""
  @functools.wraps(fn)
  def run(self: Tensor, dim: int, index: Tensor, src: Any, *args: Any, **kwargs: Any) -> Tensor:
    if self.ndim: return fn(self, dim, index, src, *args, **kwargs)
    return fn(self.reshape(1), 0, index.reshape(-1), src.reshape(-1) if isinstance(src, Tensor) else src, *args, **kwargs).reshape(())
  return run


@aten("scatter.src", "scatter.value")
@_zero_dim_as_1d
def scatter(self: Tensor, dim: int, index: Tensor, src: Any) -> Tensor:
  if index.numel() == 0: return self
  if not isinstance(src, Tensor): src = Tensor.full(index.shape, src, dtype=self.dtype).to(self.device)
  return scatter_last(self, dim, index, src.cast(self.dtype))


@aten("scatter.reduce", "scatter.value_reduce")
@_zero_dim_as_1d
def scatter_reduce_legacy(self: Tensor, dim: int, index: Tensor, src: Any, *, reduce: str) -> Tensor:
  if index.numel() == 0: return self
  # tinygrad's scatter takes reduce= only with a scalar src; a tensor src is scatter_reduce including self
  if isinstance(src, Tensor):
    return self.scatter_reduce(dim, index.cast(dtypes.int32), src.cast(self.dtype), {"add": "sum", "multiply": "prod"}[reduce])
  return self.scatter(dim, index.cast(dtypes.int32), _cast(src, self.dtype), reduce=reduce)


@aten("scatter_add")
@_zero_dim_as_1d
def scatter_add(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
  if index.numel() == 0: return self
  return self.scatter_reduce(dim, index.cast(dtypes.int32), src.cast(self.dtype), "sum")


@aten("scatter_reduce.two")
@_zero_dim_as_1d
def scatter_reduce(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
  if index.numel() == 0: return self
  return self.scatter_reduce(dim, index.cast(dtypes.int32), src.cast(self.dtype), reduce, include_self=include_self)


@aten("sort", "sort.stable")
def sort(self: Tensor, dim: int = -1, descending: bool = False, stable: bool | None = None) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  if self.shape[dim] == 0: return self, Tensor.empty(*self.shape, dtype=dtypes.int64)
  values, idx = self.sort(dim, descending)
  return values, idx.cast(dtypes.int64)


@aten("topk")
def topk(self: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  dim = dim % self.ndim
  if k == 0 or self.shape[dim] == 0:
    shape = tuple(k if i == dim else s for i, s in enumerate(self.shape))
    return Tensor.empty(*shape, dtype=self.dtype), Tensor.empty(*shape, dtype=dtypes.int64)
  values, idx = self.topk(k, dim, largest=largest)
  return values, idx.cast(dtypes.int64)


@aten("equal")
def equal(self: Tensor, other: Tensor) -> bool:
  """True if same shape and elements (a Python bool: one counted read of the device)."""
  return tuple(self.shape) == tuple(other.shape) and bool(to_host(self.eq(other).all()))


@aten("tril")
def tril(self: Tensor, diagonal: int = 0) -> Tensor: return self.tril(diagonal)


@aten("triu")
def triu(self: Tensor, diagonal: int = 0) -> Tensor: return self.triu(diagonal)


# ***** shape ops that copy *****

@aten("cat")
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
  dt = result_dtype(*[t for t in tensors])
  parts = [t.cast(dt) for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
  if not parts: return tensors[0].cast(dt)
  return parts[0].cat(*parts[1:], dim=dim) if len(parts) > 1 else parts[0]


@aten("stack")
def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
  return cat([t.unsqueeze(dim) for t in tensors], dim)


@aten("constant_pad_nd")
def constant_pad_nd(self: Tensor, pad: Sequence[int], value: Any = 0) -> Tensor:
  pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
  x = self
  grow = [(max(a, 0), max(b, 0)) for a, b in pairs]
  x = x.pad(tuple(v for pr in grow for v in pr), value=value) if any(a or b for a, b in grow) else x
  shrink = [None] * (x.ndim - len(pairs)) + [(-min(a, 0), x.shape[x.ndim - 1 - i] + min(b, 0)) for i, (a, b) in enumerate(pairs)][::-1]
  return x.shrink(tuple(shrink)) if any(a < 0 or b < 0 for a, b in pairs) else x


@aten("flip")
def flip(self: Tensor, dims: Sequence[int]) -> Tensor: return self.flip(tuple(dims)) if dims and self.ndim else self


@aten("roll")
def roll(self: Tensor, shifts: Sequence[int], dims: Sequence[int] = ()) -> Tensor:
  if not dims: return self.reshape(-1).roll(tuple(shifts), 0).reshape(self.shape)
  return self.roll(tuple(shifts), tuple(dims))


@aten("repeat")
def repeat(self: Tensor, repeats: Sequence[int]) -> Tensor: return self.repeat(tuple(repeats))


@aten("clone", "contiguous", "alias", "detach", "lift_fresh", "lift_fresh_copy", "_conj", "resolve_conj", "resolve_neg")
def identity(self: Tensor, *, memory_format: Any = None) -> Tensor: return self


@aten("_to_copy")
def to_copy(self: Tensor, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None, pin_memory: Any = None,
            non_blocking: bool = False, memory_format: Any = None) -> Tensor:
  return self.cast(to_tiny_dtype(dtype)) if dtype is not None else self


# ***** views, functional (the eager device aliases storage itself; these serve the compile backend) *****

@aten("view", "_unsafe_view", "reshape", "_reshape_alias", "view_copy")
def view(self: Tensor, size: Sequence[int], *stride: Any) -> Tensor: return self.reshape(tuple(size))


@aten("permute", "permute_copy")
def permute(self: Tensor, dims: Sequence[int]) -> Tensor: return self.permute(tuple(dims)) if self.ndim else self


@aten("transpose.int", "transpose_copy.int")
def transpose(self: Tensor, dim0: int, dim1: int) -> Tensor: return self.transpose(dim0, dim1) if self.ndim else self


@aten("t")
def t(self: Tensor) -> Tensor: return self.transpose(0, 1) if self.ndim == 2 else self


@aten("expand", "expand_copy")
def expand(self: Tensor, size: Sequence[int], *, implicit: bool = False) -> Tensor:
  size = tuple(s if s != -1 else self.shape[i - (len(size) - self.ndim)] for i, s in enumerate(size))
  return self.reshape((1,) * (len(size) - self.ndim) + tuple(self.shape)).expand(size)


@aten("slice.Tensor", "slice_copy.Tensor")
def slice_(self: Tensor, dim: int = 0, start: int | None = None, end: int | None = None, step: int = 1) -> Tensor:
  return self[(slice(None),) * (dim % self.ndim) + (slice(start, end, step),)]


@aten("select.int", "select_copy.int")
def select(self: Tensor, dim: int, index: int) -> Tensor: return self[(slice(None),) * (dim % self.ndim) + (index,)]


@aten("squeeze", "squeeze.dim", "squeeze.dims")
def squeeze(self: Tensor, dim: Any = None) -> Tensor:
  dims = _dims(dim, self.ndim) if self.ndim else ()
  return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))


@aten("unsqueeze")
def unsqueeze(self: Tensor, dim: int) -> Tensor: return self.unsqueeze(dim)


@aten("as_strided", "as_strided_copy")
def as_strided(self: Tensor, size: Sequence[int], stride: Sequence[int], storage_offset: int | None = None) -> Tensor:
  return strided_read(self.reshape(-1), size, stride, storage_offset or 0)


@aten("diagonal_scatter")
def diagonal_scatter(self: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
  """self with its (offset, dim1, dim2) diagonal replaced by src (whose last dim runs along the diagonal)."""
  if src.shape[-1] == 0: return self
  d1, d2 = dim1 % self.ndim, dim2 % self.ndim
  order = [d for d in range(self.ndim) if d not in (d1, d2)] + [d1, d2]
  x = self.permute(*order)                                                            # (..., A, B)
  (A, B), n, lead = x.shape[-2:], src.shape[-1], src.shape[:-1]
  a, b = Tensor.arange(A, dtype=dtypes.int32).reshape(A, 1), Tensor.arange(B, dtype=dtypes.int32).reshape(1, B)
  r0, c0 = max(0, -offset), max(0, offset)
  on = (a - r0 == b - c0) & (a >= r0) & (a - r0 < n)
  pos = (a - r0).clip(0, n - 1).expand(A, B).reshape((1,) * len(lead) + (A, B)).expand(*lead, A, B)
  picked = src.cast(self.dtype).unsqueeze(-2).expand(*lead, A, n).gather(-1, pos)
  inverse = [order.index(d) for d in range(self.ndim)]
  return on.where(picked, x).permute(*inverse)


@aten("as_strided_scatter")
def as_strided_scatter(self: Tensor, src: Tensor, size: Sequence[int], stride: Sequence[int], storage_offset: int | None = None) -> Tensor:
  """A contiguous copy of self with the (size, stride, offset) window of its storage replaced by src (a clone's layout)."""
  return strided_write(self.reshape(-1), src, size, stride, storage_offset or 0).reshape(self.shape)


@aten("diagonal")
def diagonal(self: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
  stride = [math.prod(self.shape[i + 1:]) for i in range(self.ndim)]
  d1, d2 = dim1 % self.ndim, dim2 % self.ndim
  n = max(0, min(self.shape[d1] - max(-offset, 0), self.shape[d2] - max(offset, 0)))
  start = max(offset, 0) * stride[d2] + max(-offset, 0) * stride[d1]
  keep = [d for d in range(self.ndim) if d not in (d1, d2)]
  return as_strided(self, [self.shape[d] for d in keep] + [n], [stride[d] for d in keep] + [stride[d1] + stride[d2]], start)


@aten("unfold")
def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
  stride = [math.prod(self.shape[i + 1:]) for i in range(self.ndim)]
  if self.ndim == 0: return self.reshape(1)
  d = dimension % self.ndim
  shape = list(self.shape)
  shape[d] = (self.shape[d] - size) // step + 1
  st = list(stride)
  st[d] = stride[d] * step
  return as_strided(self, shape + [size], st + [stride[d]], 0)


# ***** creation and random *****

def _factory_dtype(dtype: torch.dtype | None, *values: Any) -> DType:
  if dtype is not None: return to_tiny_dtype(dtype)
  return result_dtype(*values) if values else to_tiny_dtype(torch.get_default_dtype())


@aten("empty.memory_format", "empty_strided")
def empty(size: Sequence[int], *args: Any, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
          pin_memory: Any = None, memory_format: Any = None) -> Tensor:
  return Tensor.empty(*size, dtype=_factory_dtype(dtype))


@aten("_efficientzerotensor")
def efficientzerotensor(size: Sequence[int], *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
                        pin_memory: Any = None) -> Tensor:
  return Tensor.zeros(*size, dtype=_factory_dtype(dtype))


@aten("full")
def full(size: Sequence[int], fill_value: Any, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
         pin_memory: Any = None) -> Tensor:
  return Tensor.full(tuple(size), fill_value, dtype=_factory_dtype(dtype, fill_value))


@aten("full_like")
def full_like(self: Tensor, fill_value: Any, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
              pin_memory: Any = None, memory_format: Any = None) -> Tensor:
  return Tensor.full(self.shape, fill_value, dtype=to_tiny_dtype(dtype) if dtype is not None else self.dtype)


@aten("scalar_tensor")
def scalar_tensor(s: Any, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None, pin_memory: Any = None) -> Tensor:
  return device_scalar(s, _factory_dtype(dtype))  # x[i] = v goes through scalar_tensor and copy_: a new v, no new kernel


@aten("fill.Scalar", "fill.Tensor")
def fill(self: Tensor, value: Any) -> Tensor:
  if not isinstance(value, Tensor) and self.numel() <= SMALL_WRITE: value = device_scalar(value, self.dtype)
  return (value.reshape(()).cast(self.dtype).expand(self.shape) if isinstance(value, Tensor) else self.const_like(value)).contiguous()


@aten("zero")
def zero(self: Tensor) -> Tensor: return self.const_like(0)


@aten("arange.start_step", "arange.start", "arange")
def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
           pin_memory: Any = None) -> Tensor:
  if end is None: start, end = 0, start
  dt = _factory_dtype(dtype, start, end, step)
  n = max(0, math.ceil((end - start) / step))
  return (Tensor.arange(n, dtype=dtypes.float64 if dtypes.is_float(dt) else dtypes.int64) * step + start).cast(dt) if n else Tensor.empty(0, dtype=dt)


def _uniform01(shape: Sequence[int], dt: DType, generator: Any) -> Tensor:
  n = math.prod(shape)
  if n == 0: return Tensor.empty(*shape, dtype=dt)
  key, counter = key_for(generator, n)
  return Tensor._rand(key, counter, tuple(shape), dtypes.float32).cast(dt)


@aten("uniform")
def uniform(self: Tensor, from_: float = 0.0, to: float = 1.0, *, generator: Any = None) -> Tensor:
  return _uniform01(self.shape, self.dtype, generator) * (to - from_) + from_


@aten("normal_functional", "normal.default")
def normal(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Tensor:
  n = math.prod(self.shape)
  u = _uniform01((2, (n + 1) // 2), dtypes.float32, generator)
  r, theta = (-2 * (1 - u[0]).log()).sqrt(), 2 * math.pi * u[1]
  z = r.unsqueeze(0) * Tensor.stack(theta.cos(), theta.sin())
  return (z.reshape(-1)[:n].reshape(self.shape) * std + mean).cast(self.dtype)


@aten("random.from", "random.to", "random")
def random_(self: Tensor, from_: int = 0, to: int | None = None, *, generator: Any = None) -> Tensor:
  if to is None: from_, to = (0, from_) if from_ else (0, 2 ** (dtypes.finfo(self.dtype)[1] + 1) if dtypes.is_float(self.dtype) else 2 ** 31)
  u = _uniform01(self.shape, dtypes.float64, generator)
  return (u * (to - from_)).floor().cast(dtypes.int64).add(from_).clip(from_, to - 1).cast(self.dtype)


@aten("bernoulli.p", "bernoulli.Tensor")
def bernoulli(self: Tensor, p: Any = 0.5, *, generator: Any = None) -> Tensor:
  return (_uniform01(self.shape, dtypes.float32, generator) < p).cast(self.dtype)


@aten("bernoulli")
def bernoulli_self(self: Tensor, *, generator: Any = None) -> Tensor:
  return (_uniform01(self.shape, dtypes.float32, generator) < self).cast(self.dtype)


@aten("exponential")
def exponential(self: Tensor, lambd: float = 1.0, *, generator: Any = None) -> Tensor:
  return (-(1 - _uniform01(self.shape, dtypes.float32, generator)).log() / lambd).cast(self.dtype)


@aten("randperm", "randperm.generator")
def randperm(n: int, *, generator: Any = None, dtype: torch.dtype | None = torch.int64, layout: Any = None, device: Any = None,
             pin_memory: Any = None) -> Tensor:
  dt = to_tiny_dtype(dtype or torch.int64)
  if n == 0: return Tensor.empty(0, dtype=dt)
  if n == 1: return Tensor.zeros(1, dtype=dt)
  return _uniform01((n,), dtypes.float32, generator).argsort().cast(dt)


@aten("native_dropout")
def native_dropout(input: Tensor, p: float, train: bool | None) -> tuple[Tensor, Tensor]:
  if not train or p == 0: return input, input.const_like(True).cast(dtypes.bool)
  keep = _uniform01(input.shape, dtypes.float32, None) >= p
  return keep.where(input * (1 / (1 - p)), 0).cast(input.dtype), keep


@aten("native_dropout_backward")
def native_dropout_backward(grad_output: Tensor, mask: Tensor, scale: float) -> Tensor: return mask.where(grad_output * scale, 0)


@aten("masked_scatter")
def masked_scatter(self: Tensor, mask: Tensor, source: Tensor) -> Tensor:
  """self with its masked positions filled, in row-major order, from the start of `source` (no size sync)."""
  shape = tuple(torch.broadcast_shapes(tuple(self.shape), tuple(mask.shape)))
  m = mask.cast(dtypes.bool).expand(shape).reshape(-1)
  if m.shape[0] == 0 or source.numel() == 0: return self.expand(shape)
  rank = (m.cast(dtypes.int32).cumsum() - 1).maximum(0).minimum(source.numel() - 1)
  return m.where(_take_rows(source.reshape(-1).cast(self.dtype), rank), self.expand(shape).reshape(-1)).reshape(shape)


@aten("searchsorted.Tensor")
def searchsorted(sorted_sequence: Tensor, self: Tensor, *, out_int32: bool = False, right: bool = False, side: str | None = None,
                 sorter: Tensor | None = None) -> Tensor:
  """Insertion points by counting boundaries below each value (< for left, <= for right), on the device."""
  if sorter is not None: sorted_sequence = sorted_sequence.gather(-1, sorter.cast(dtypes.int32))
  right = right or side == "right"
  seq, vals = sorted_sequence.unsqueeze(-2), self.unsqueeze(-1)
  if sorted_sequence.ndim == 1: seq = sorted_sequence.reshape((1,) * self.ndim + (-1,))
  below = (seq <= vals) if right else (seq < vals)
  return below.cast(dtypes.int32).sum(-1).cast(dtypes.int32 if out_int32 else dtypes.int64)


@aten("kthvalue")
def kthvalue(self: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  values, idx = sort(self, dim)
  d = dim % self.ndim
  pick = tuple(slice(k - 1, k) if i == d else slice(None) for i in range(self.ndim))
  v, i = values[pick], idx[pick]
  return (v, i) if keepdim else (v.squeeze(d), i.squeeze(d))


@aten("median.dim")
def median_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  return kthvalue(self, (self.shape[dim] - 1) // 2 + 1, dim, keepdim)


@aten("median")
def median(self: Tensor) -> Tensor:
  return median_dim(self.reshape(-1), 0)[0] if self.numel() else Tensor.full((), float("nan"), dtype=self.dtype)


@aten("nonzero_static")
def nonzero_static(self: Tensor, *, size: int, fill_value: int = -1) -> Tensor:
  """nonzero padded or cut to `size` rows: the shape is known, so nothing is read back."""
  flat = self.reshape(-1).cast(dtypes.bool)
  if size == 0 or flat.shape[0] == 0: return Tensor.full((size, self.ndim), fill_value, dtype=dtypes.int64)
  rank = flat.cast(dtypes.int32).cumsum() - 1
  hit = flat.unsqueeze(0) & rank.unsqueeze(0).eq(Tensor.arange(size, dtype=dtypes.int32).unsqueeze(1))
  pos = hit.where(Tensor.arange(flat.shape[0], dtype=dtypes.int32).unsqueeze(0), 0).sum(1).cast(dtypes.int64)
  found = hit.any(1).unsqueeze(1)
  cols, div_ = [], 1
  for n in reversed(self.shape):
    cols.append((pos // div_) % n)
    div_ *= n
  idx = Tensor.stack(*cols[::-1], dim=1) if cols else Tensor.zeros(size, 0, dtype=dtypes.int64)
  return found.where(idx, fill_value)


@aten("put")
def put(self: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
  """Writes into the flattened tensor (index_put on its one dim)."""
  return index_put(self.reshape(-1), [index.reshape(-1)], source.reshape(-1), accumulate).reshape(self.shape)


@aten("index_fill.int_Scalar", "index_fill.int_Tensor")
def index_fill(self: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
  if self.ndim == 0: return self.const_like(0).cast(self.dtype) + _cast(value, self.dtype) if index.numel() else self
  d, idx = dim % self.ndim, index.reshape(-1).cast(dtypes.int32)
  idx = (idx < 0).where(idx + self.shape[d], idx)
  hit = (Tensor.arange(self.shape[d], dtype=dtypes.int32).unsqueeze(1) == idx.unsqueeze(0)).any(1)
  hit = hit.reshape(tuple(self.shape[d] if i == d else 1 for i in range(self.ndim)))
  v = value.reshape(()).cast(self.dtype) if isinstance(value, Tensor) else value
  return hit.where(v, self).cast(self.dtype)


@aten("index_add")
def index_add(self: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
  if self.ndim == 0 or index.numel() == 0: return self + (source.sum() * alpha if index.numel() else 0)
  d = dim % self.ndim
  idx = index.reshape(tuple(-1 if i == d else 1 for i in range(source.ndim))).expand(source.shape).cast(dtypes.int32)
  return self.scatter_reduce(d, idx, (source * alpha).cast(self.dtype), "sum")


@aten("nan_to_num")
def nan_to_num(self: Tensor, nan: float | None = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
  if not dtypes.is_float(self.dtype): return self
  info = torch.finfo(to_torch_dtype(self.dtype))
  x = self.isnan().where(nan or 0.0, self)
  x = (self == float("inf")).where(info.max if posinf is None else posinf, x)
  return (self == float("-inf")).where(info.min if neginf is None else neginf, x)


@aten("addbmm")
def addbmm(self: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
  prod_ = batch1.matmul(batch2).sum(0) * alpha
  return prod_ if beta == 0 else prod_ + self * beta


@aten("angle")
def angle(self: Tensor) -> Tensor:
  x = self.cast(_float(self.dtype))
  return x.isnan().where(x, (x < 0).where(math.pi, 0.0))


@aten("hardshrink_backward", "softshrink_backward")
def shrink_backward(grad_out: Tensor, self: Tensor, lambd: float) -> Tensor: return (self.abs() > lambd).where(grad_out, 0)


def _reduce_grad(g: Tensor, grad_output: Tensor, reduction: int) -> Tensor:
  return g * grad_output / g.numel() if reduction == 1 else g * grad_output


def _multilabel_margin(self: Tensor, target: Tensor, reduction: int) -> tuple[Tensor, Tensor]:
  x, y = (self, target) if self.ndim == 2 else (self.reshape(1, -1), target.reshape(1, -1))
  valid = (y == -1).cast(dtypes.int32).cumsum(-1) == 0                            # targets count up to the first -1
  yk = valid.where(y, 0).cast(dtypes.int32)
  hit = (valid.unsqueeze(-1) & (yk.unsqueeze(-1) == Tensor.arange(x.shape[-1], dtype=dtypes.int32))).any(-2)   # (N, C)
  margins = (1 - x.gather(-1, yk).unsqueeze(-1) + x.unsqueeze(-2)).relu()         # (N, K, C): target k against class j
  loss = (valid.unsqueeze(-1) & ~hit.unsqueeze(-2)).where(margins, 0).sum((-2, -1)) / x.shape[-1]
  loss = loss.mean() if reduction == 1 else loss.sum() if reduction == 2 else loss if self.ndim == 2 else loss.reshape(())
  return loss, hit.cast(self.dtype).reshape(self.shape)


@aten("multilabel_margin_loss_forward")
def multilabel_margin_loss_forward(self: Tensor, target: Tensor, reduction: int) -> tuple[Tensor, Tensor]:
  """The CPU's semantics: each row's targets end at its first -1 (PyTorch's decomposition reads past it)."""
  return _multilabel_margin(self, target, reduction)


@aten("multilabel_margin_loss_backward")
def multilabel_margin_loss_backward(grad_output: Tensor, self: Tensor, target: Tensor, reduction: int, is_target: Tensor) -> Tensor:
  x = self.detach()
  return _multilabel_margin(x, target, reduction)[0].gradient(x, gradient=grad_output)[0]


@aten("huber_loss_backward")
def huber_loss_backward(grad_output: Tensor, self: Tensor, target: Tensor, reduction: int, delta: float) -> Tensor:
  d = self - target
  return _reduce_grad((d.abs() <= delta).where(d, delta * d.sign()), grad_output, reduction)


@aten("smooth_l1_loss_backward")
def smooth_l1_loss_backward(grad_output: Tensor, self: Tensor, target: Tensor, reduction: int, beta: float) -> Tensor:
  d = self - target
  return _reduce_grad((d.abs() < beta).where(d / beta, d.sign()) if beta > 0 else d.sign(), grad_output, reduction)


def _cum_extreme(self: Tensor, dim: int, values: Tensor) -> tuple[Tensor, Tensor]:
  """Indices like the CPU's: the last position so far holding the running extreme."""
  if self.ndim == 0: return values, Tensor(0, dtype=dtypes.int64)
  x, v, n = self.transpose(dim, -1), values.transpose(dim, -1), self.shape[dim]
  j = Tensor.arange(n, dtype=dtypes.int32)
  hit = (x.unsqueeze(-2) == v.unsqueeze(-1)) & (j.reshape(1, n) <= j.reshape(n, 1))
  return values, hit.where(j, -1).max(-1).cast(dtypes.int64).transpose(dim, -1)


@aten("cummax")
def cummax(self: Tensor, dim: int) -> tuple[Tensor, Tensor]: return _cum_extreme(self, dim, self.cummax(dim)[0] if self.ndim else self)


@aten("cummin")
def cummin(self: Tensor, dim: int) -> tuple[Tensor, Tensor]: return _cum_extreme(self, dim, self.cummin(dim)[0] if self.ndim else self)


from tinybounty.torch_backend import distance, linalg, pooling, reductions, special  # noqa: E402,F401  (they register their ops in this table)
