"""Elementwise ops: unary math, binary arithmetic with PyTorch's promotion, comparisons, activations and their
backwards, in opmath (float32) for half and bfloat16 operands as PyTorch computes them."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType

from tinybounty.torch_backend.scalars import buffered
from tinybounty.torch_backend.table import (
  aten,
  cast_to,
  float_dtype,
  lookup,
  opmath,
  precise_dtype,
  result_dtype,
  to_torch_dtype,
)


def _unary(fn: Callable[[Tensor], Tensor], floating: bool = True) -> Callable[..., Tensor]:
  return opmath(lambda self: fn(self.cast(float_dtype(self.dtype)))) if floating else fn


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
                   "signbit": lambda x: x.const_like(False) if x.dtype == dtypes.bool
                   else (x < 0) | (x.eq(0) & ((1 / x.cast(float_dtype(x.dtype))) < 0))}.items():
  aten(_name)(_unary(_fn, floating=False))


def _gelu(x: Tensor, approximate: str) -> Tensor:
  return x.gelu() if approximate == "tanh" else 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


@aten("gelu")
@opmath
def gelu(self: Tensor, approximate: str = "none") -> Tensor: return _gelu(self.cast(float_dtype(self.dtype)), approximate)


@aten("gelu_backward")
@opmath
def gelu_backward(grad_output: Tensor, self: Tensor, *, approximate: str = "none") -> Tensor:
  x, g = self.cast(float_dtype(self.dtype)), grad_output.cast(float_dtype(self.dtype))
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
    a, b = cast_to(self, out(dt)), cast_to(other, out(dt))
    if scalars_on_device: a, b = buffered(a, b), buffered(b, a)
    if not isinstance(a, Tensor): a = Tensor(a, dtype=out(dt)) if not isinstance(b, Tensor) else b.const_like(a)
    if not isinstance(b, Tensor): b = a.const_like(b)  # in the result dtype, as PyTorch casts a scalar operand
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
       else f"{_name}.default")(_binary(_fn, (lambda dt: dt) if _name not in ("atan2", "hypot", "logaddexp", "xlogy") else float_dtype,
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
  return opmath(_binary(lambda a, b: a + _scaled(b, alpha)))(self, other) if alpha != 1 else _binary(Tensor.add, scalars_on_device=True)(self, other)


@aten("sub.Tensor", "sub.Scalar")
def sub(self: Any, other: Any, alpha: Any = 1) -> Tensor:
  return opmath(_binary(lambda a, b: a - _scaled(b, alpha)))(self, other) if alpha != 1 else _binary(Tensor.sub, scalars_on_device=True)(self, other)


@aten("rsub.Tensor", "rsub.Scalar")
def rsub(self: Any, other: Any, alpha: Any = 1) -> Tensor: return sub(other, self, alpha)


@aten("div.Tensor", "div.Scalar")
def div(self: Any, other: Any) -> Tensor: return _binary(lambda a, b: a / b, float_dtype, scalars_on_device=True)(self, other)


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
  return self.cast(dt).pow(cast_to(exponent, dt))


@aten("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def where(condition: Tensor, self: Any, other: Any) -> Tensor:
  dt = result_dtype(self, other)
  return condition.cast(dtypes.bool).where(cast_to(self, dt), cast_to(other, dt)).cast(dt)


@aten("masked_fill.Scalar", "masked_fill.Tensor")
def masked_fill(self: Tensor, mask: Tensor, value: Any) -> Tensor: return mask.where(cast_to(value, self.dtype), self).cast(self.dtype)


@aten("clamp", "clamp.Tensor")
def clamp(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
  dt = result_dtype(self, min, max)
  x = self.cast(dt)
  if min is not None: x = x.maximum(cast_to(min, dt))
  if max is not None: x = x.minimum(cast_to(max, dt))
  return x


@aten("clamp_min", "clamp_min.Tensor")
def clamp_min(self: Tensor, min: Any) -> Tensor: return clamp(self, min=min)


@aten("clamp_max", "clamp_max.Tensor")
def clamp_max(self: Tensor, max: Any) -> Tensor: return clamp(self, max=max)


@aten("lerp.Scalar", "lerp.Tensor")
@opmath
def lerp(self: Tensor, end: Tensor, weight: Any) -> Tensor: return self + (end - self) * weight


@aten("addcmul")
@opmath
def addcmul(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
  return add(self, mul_(tensor1, tensor2), alpha=value)


@aten("addcdiv")
@opmath
def addcdiv(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
  return add(self, div(tensor1, tensor2), alpha=value)


def mul_(a: Any, b: Any) -> Tensor: return lookup("mul.Tensor")(a, b)


@aten("sigmoid_backward")
@opmath
def sigmoid_backward(grad_output: Tensor, output: Tensor) -> Tensor: return grad_output * output * (1 - output)


@aten("tanh_backward")
@opmath
def tanh_backward(grad_output: Tensor, output: Tensor) -> Tensor: return grad_output * (1 - output * output)


@aten("nan_to_num")
def nan_to_num(self: Tensor, nan: float | None = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
  if not dtypes.is_float(self.dtype): return self
  info = torch.finfo(to_torch_dtype(self.dtype))
  x = self.isnan().where(nan or 0.0, self)
  x = (self == float("inf")).where(info.max if posinf is None else posinf, x)
  return (self == float("-inf")).where(info.min if neginf is None else neginf, x)


@aten("angle")
def angle(self: Tensor) -> Tensor:
  x = self.cast(float_dtype(self.dtype))
  return x.isnan().where(x, (x < 0).where(math.pi, 0.0))


@aten("hardshrink_backward", "softshrink_backward")
def shrink_backward(grad_out: Tensor, self: Tensor, lambd: float) -> Tensor: return (self.abs() > lambd).where(grad_out, 0)
