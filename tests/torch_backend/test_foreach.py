"""The optimizers' `_foreach_` ops as one kernel call over the list (foreach.py), against PyTorch's CPU kernels."""
import pytest
import torch

import tinybounty.torch_backend as tb
from tinybounty.torch_backend import capture, device

SHAPES = [(3, 4), (5,), (2, 3, 2)]
TOL = {"rtol": 1e-6, "atol": 1e-7}  # element-wise float32 ops, one rounding each on both devices


def lists(n: int, seed: int = 0, positive: bool = False) -> list[list[torch.Tensor]]:
  g = torch.Generator().manual_seed(seed)
  out = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(n)]
  return [[x.abs() + 0.5 for x in xs] for xs in out] if positive else out


CALLS = {  # name -> (foreach op, the call's arguments from three lists a, b, c of SHAPES)
  "add_.List": (torch._foreach_add_, lambda a, b, c: (a, b), {"alpha": 0.5}),
  "add_.Scalar": (torch._foreach_add_, lambda a, b, c: (a, 2.0), {}),
  "mul_.ScalarList": (torch._foreach_mul_, lambda a, b, c: (a, [0.1, -0.2, 3.0]), {}),
  "sub_.List": (torch._foreach_sub_, lambda a, b, c: (a, b), {}),
  "addcdiv_.Scalar": (torch._foreach_addcdiv_, lambda a, b, c: (a, b, c), {"value": -0.1}),
  "addcmul_.ScalarList": (torch._foreach_addcmul_, lambda a, b, c: (a, b, c, [0.1, 0.2, 0.3]), {}),
  "lerp_.Scalar": (torch._foreach_lerp_, lambda a, b, c: (a, b, 0.3), {}),
  "clamp_min_.Scalar": (torch._foreach_clamp_min_, lambda a, b, c: (a, 0.1), {}),
  "zero_": (torch._foreach_zero_, lambda a, b, c: (a,), {}),
  "sqrt": (torch._foreach_sqrt, lambda a, b, c: (c,), {}),
  "maximum.List": (torch._foreach_maximum, lambda a, b, c: (a, b), {}),
  "div.ScalarList": (torch._foreach_div, lambda a, b, c: (a, [2.0, 3.0, 0.5]), {}),
  "mul.Tensor": (torch._foreach_mul, lambda a, b, c: (a, c[1][0]), {}),
}


def to_tiny(x):
  if isinstance(x, torch.Tensor): return x.to("tiny")
  if isinstance(x, list): return [to_tiny(v) for v in x]
  return x


@pytest.mark.parametrize("name", list(CALLS))
def test_foreach_matches_cpu(name):
  op, make, kwargs = CALLS[name]
  (a, b), (c,) = lists(2), lists(1, seed=1, positive=True)
  want_args = make(a, b, c)
  got_args = make(*[to_tiny(v) for v in (a, b, c)])
  assert f"_foreach_{name}".removesuffix(".default") in device.registered
  got, want = op(*got_args, **kwargs), op(*want_args, **kwargs)
  if want is None: got, want = got_args[0], want_args[0]  # in place: the targets hold the result
  assert len(got) == len(want)
  for g, w in zip(got, want): torch.testing.assert_close(g.cpu(), w, **TOL)


def test_views_are_written_through():
  """Targets that are views (a transpose, a strided slice of a bigger storage) are written through their layout."""
  x, y = torch.randn(4, 6), torch.randn(5, 8)
  tx, ty = x.to("tiny"), y.to("tiny")
  others = [torch.randn(6, 4), torch.randn(2, 4)]
  torch._foreach_add_([x.t(), y[1:3, ::2]], others)
  torch._foreach_add_([tx.t(), ty[1:3, ::2]], to_tiny(others))
  torch.testing.assert_close(tx.cpu(), x, **TOL)
  torch.testing.assert_close(ty.cpu(), y, **TOL)


def test_aliased_elements_run_one_by_one_as_on_the_cpu():
  """An element whose argument is another element's target sees that target's new value, as PyTorch's loop does."""
  a, b = torch.randn(3), torch.randn(3)
  want = [a.clone(), b.clone()]
  torch._foreach_add_(want, [want[1], want[0]])  # a += b; then b += (new) a
  got = [a.to("tiny"), b.to("tiny")]
  torch._foreach_add_(got, [got[1], got[0]])
  for g, w in zip(got, want): torch.testing.assert_close(g.cpu(), w, **TOL)
  rows = torch.randn(2, 3)
  want_rows = rows.clone()
  torch._foreach_mul_([want_rows[0], want_rows[1]], 2.0)  # two targets in one storage
  tiny_rows = rows.to("tiny")
  torch._foreach_mul_([tiny_rows[0], tiny_rows[1]], 2.0)
  torch.testing.assert_close(tiny_rows.cpu(), want_rows, **TOL)


def test_mismatched_lists_are_a_clear_error():
  a, b = lists(2)
  with pytest.raises(RuntimeError, match="list"):
    torch._foreach_add_(to_tiny(a), to_tiny(b[:2]))


def test_a_changing_scalar_list_is_a_step_argument():
  """A list of floats that changes every step (AdamW's bias corrections) must not key every step apart: the step
  replays with each step's floats and matches the CPU."""
  was, warmup = capture.enabled(), capture.WARMUP[0]
  capture.reset()
  capture.set_enabled(True, warmup=0)
  tb.reset_stats()
  try:
    a = lists(1)[0]
    got = to_tiny(a)
    for step in range(1, 10):
      scale = [1 + 0.1 / step] * len(a)  # equal within a step, as one bias correction for every parameter
      torch._foreach_mul_(a, scale)
      torch._foreach_mul_(got, scale)
      torch._foreach_add_(a, 0.25)
      torch._foreach_add_(got, 0.25)
      torch.testing.assert_close(got[0].sum().item(), a[0].sum().item(), rtol=1e-6, atol=1e-6)
    for g, w in zip(got, a): torch.testing.assert_close(g.cpu(), w, **TOL)
    assert tb.stats()["replays"] >= 4, tb.stats()
  finally:
    capture.set_enabled(was, warmup)
    tb.reset_stats()
