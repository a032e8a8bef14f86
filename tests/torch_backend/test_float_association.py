"""float_association.install(): on the clang CPU renderer a float a + (b + c) is computed in that order (stock tinygrad
0.14 prints `a+b+c`, which C evaluates as (a+b)+c), in the parent and in the compile workers; uninstall() restores it.
The LLVM renderer keeps the graph's order already: these tests hold on DEV=CPU and DEV=CPU:LLVM alike when installed.

The values make the order visible exactly: in float32 (and float64) 1 + (1e8 - 1e8) is 1 while (1 + 1e8) - 1e8 is 0,
so the expected values are PyTorch CPU float32's own (IEEE, one rounding per op), with no tolerance."""
import numpy as np
import pytest
import torch
from tinygrad import Device, Tensor

from tinybounty.torch_backend import float_association

A, B, C = (np.array(v, np.float32) for v in ([1.0, 0.5, 3.0], [1e8, -1e8, 2.0**25], [-1e8, 1e8, -(2.0**25)]))


def _sum_right(*scales: float) -> list[np.ndarray]:
  a, b, c = Tensor(A).realize(), Tensor(B).realize(), Tensor(C).realize()
  outs = [a * s + (b + c) for s in scales]
  Tensor.realize(*outs)  # more than one kernel: rendered in the worker pool where there is one
  return [o.numpy() for o in outs]


def _reference(s: float) -> np.ndarray:
  return (torch.tensor(A) * s + (torch.tensor(B) + torch.tensor(C))).numpy()


@pytest.fixture
def restore():
  was = float_association.installed()
  yield
  (float_association.install if was else float_association.uninstall)()


@pytest.mark.skipif(Device[Device.DEFAULT].renderer.__class__.__name__ != "ClangRenderer", reason="the clang renderer's stock order")
def test_stock_clang_reassociates(restore):
  float_association.uninstall()
  assert not np.array_equal(_sum_right(1.0)[0], _reference(1.0))  # prints (a+b)+c: 0 where PyTorch gives 1


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 0.5, 2.0)])
def test_installed_keeps_graph_order(restore, scales):
  float_association.install()
  for got, s in zip(_sum_right(*scales), scales):
    np.testing.assert_array_equal(got, _reference(s))


def test_uninstall_restores_stock(restore):
  from tinygrad.renderer.cstyle import ClangRenderer
  float_association.uninstall()
  stock = ClangRenderer.string_rewrite
  float_association.install()
  assert ClangRenderer.string_rewrite is not stock and float_association.installed()
  float_association.uninstall()
  assert ClangRenderer.string_rewrite is stock and not float_association.installed()


def test_tiny_device_sums_in_order():
  """Through the torch device (register() installs it): a + (b + c) on tiny equals PyTorch CPU float32 exactly."""
  import tinybounty.torch_backend as tb
  tb.register()
  a, b, c = (torch.tensor(v) for v in (A, B, C))
  got = (a.to("tiny") + (b.to("tiny") + c.to("tiny"))).cpu()
  torch.testing.assert_close(got, a + (b + c), rtol=0, atol=0)
