"""GEMMs and convolutions: half / bfloat16 products exact in float32 (as cuBLAS and cuDNN compute them) unless
TINY_HALF_PRODUCTS=half keeps tinygrad's half kernels."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.table import (
  aten,
  opmath,
)

# Products of half / bfloat16 operands are exact in PyTorch's GEMMs and convolutions (float32 accumulation of exact
# products, one rounding at the end); tinygrad's kernels without tensor cores round each product to half first.
# Float32 operands also keep tinygrad from its half tensor cores: TINY_HALF_PRODUCTS=half trades exactness for them.
EXACT_HALF_PRODUCTS = os.environ.get("TINY_HALF_PRODUCTS", "exact") != "half"


def _gemm(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
  exact = opmath(fn)
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


@aten("addbmm")
def addbmm(self: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
  prod_ = batch1.matmul(batch2).sum(0) * alpha
  return prod_ if beta == 0 else prod_ + self * beta
