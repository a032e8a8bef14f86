"""Bounty 01: topk, index_put, index.Tensor, masked_select, randperm on the device, checked against the CPU, with zero
device-to-host transfers (forward and backward)."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinybounty.torch_backend as tb

SHAPES = [(7,), (2, 3, 4), (0, 4)]


def _leaf(x):
  return x.detach().to("tiny").requires_grad_(x.requires_grad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [0, 3])
def test_topk(shape, k, counter):
  x = torch.randn(*shape, requires_grad=True)
  if k > shape[-1]: pytest.skip("k larger than the dim")
  t = _leaf(x)
  counter.clear()
  got = {largest: torch.topk(t, k, largest=largest) for largest in (True, False)}
  got[True][0].sum().backward()
  assert tb.stats()["d2h"] == 0 and not counter
  for largest, (v, i) in got.items():
    rv, _ = torch.topk(x, k, largest=largest)
    assert i.dtype == torch.int64 and torch.equal(v.detach().cpu(), rv.detach())
    assert torch.equal(x.detach().gather(-1, i.cpu()), rv.detach())
  torch.topk(x, k)[0].sum().backward()
  assert torch.equal(t.grad.cpu(), x.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32])
@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_with_duplicates(dtype, accumulate, counter):
  base = torch.arange(20).reshape(4, 5).to(dtype)
  idx = (torch.tensor([0, 2, 2, 3, 0]), torch.tensor([1, 4, 4, 0, 1]))
  vals = torch.tensor([1, 2, 3, 4, 5]).to(dtype)
  t, tidx, tvals = base.to("tiny"), tuple(i.to("tiny") for i in idx), vals.to("tiny")
  counter.clear()
  t.index_put_(tidx, tvals, accumulate=accumulate)
  assert tb.stats()["d2h"] == 0 and not counter
  ref = base.clone().index_put_(idx, vals, accumulate=accumulate)
  got = t.cpu()
  if accumulate: assert torch.equal(got, ref)
  else:  # duplicate positions: PyTorch leaves the winner unspecified; it must be one of the written values
    assert torch.equal(got[1:2], ref[1:2]) and got[3, 0] == 4
    assert got[0, 1] in (1, 5) and got[2, 4] in (2, 3)


def test_index_put_on_view_and_backward(counter):
  x = torch.randn(4, 6, requires_grad=True)
  t = _leaf(x)
  v = torch.randn(3, requires_grad=True)
  tv = _leaf(v)
  idx = torch.tensor([2, 0, 2])
  ya = x.clone()
  ya[1].index_put_((idx,), v, accumulate=True)
  tidx = idx.to("tiny")
  counter.clear()
  yb = t.clone()
  yb[1].index_put_((tidx,), tv, accumulate=True)
  (ya * ya).sum().backward()
  (yb * yb).sum().backward()
  assert tb.stats()["d2h"] == 0 and not counter
  assert torch.allclose(yb.detach().cpu(), ya.detach())
  assert torch.allclose(t.grad.cpu(), x.grad) and torch.allclose(tv.grad.cpu(), v.grad)


@pytest.mark.parametrize("make_index", [
  lambda x: (torch.tensor([0, -1, 1, 1]),),
  lambda x: (slice(None), torch.tensor([[0, 2], [1, 1]])),
  lambda x: (torch.tensor([[0], [1]]), slice(None), torch.tensor([1, 0, 2])),
  lambda x: (Ellipsis, torch.tensor([3, 0])),
  lambda x: (None, torch.tensor([1, 2]), None),
  lambda x: (x > 0,),
  lambda x: (torch.zeros(x.shape[0], dtype=torch.bool),),
  lambda x: (slice(None), torch.tensor([True, False, True])),
])
def test_advanced_indexing_forward_backward(make_index, counter):
  x = torch.randn(3, 3, 4, requires_grad=True)
  t = _leaf(x)
  ix = make_index(x)
  tix = tuple(i.to("tiny") if isinstance(i, torch.Tensor) else i for i in ix)
  counter.clear()
  ref, got = x[ix], t[tix]
  (ref * ref).sum().backward()
  (got * got).sum().backward()
  booleans = sum(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in ix)
  # a boolean index reads only its True count, once forward and once in backward's index_put
  assert tb.stats()["d2h"] == 0 and len(counter) == tb.stats()["size_syncs"] <= 2 * booleans
  assert got.shape == ref.shape and torch.equal(got.detach().cpu(), ref.detach())
  assert torch.allclose(t.grad.cpu(), x.grad)


@pytest.mark.parametrize("mask_kind", ["random", "none", "all", "broadcast"])
def test_masked_select(mask_kind, counter):
  x = torch.randn(4, 5, requires_grad=True)
  mask = {"random": torch.rand(4, 5) > 0.5, "none": torch.zeros(4, 5, dtype=torch.bool),
          "all": torch.ones(4, 5, dtype=torch.bool), "broadcast": torch.tensor([True, False, True, False, True])}[mask_kind]
  t, tmask = _leaf(x), mask.to("tiny")
  counter.clear()
  ref, got = x.masked_select(mask), t.masked_select(tmask)
  ref.sum().backward()
  got.sum().backward()
  assert tb.stats()["d2h"] == 0 and tb.stats()["size_syncs"] == len(counter) == 1  # one integer: the True count
  assert torch.equal(got.detach().cpu(), ref.detach())
  assert torch.equal(t.grad.cpu(), x.grad)


@pytest.mark.parametrize("n", [0, 1, 2, 17, 100])
def test_randperm_is_a_permutation(n, counter):
  g = torch.Generator().manual_seed(n)
  p = torch.randperm(n, device="tiny")
  q = torch.randperm(n, generator=g, device="tiny")
  q += 0  # computed on the device, then checked
  assert tb.stats()["d2h"] == 0 and not counter
  for r in (p, q):
    assert r.dtype == torch.int64 and torch.equal(r.cpu().sort().values, torch.arange(n))
  g2 = torch.Generator().manual_seed(n)
  assert torch.equal(torch.randperm(n, generator=g2, device="tiny").cpu(), q.cpu())


def test_randperm_is_not_constant():
  perms = {tuple(torch.randperm(8, device="tiny").cpu().tolist()) for _ in range(4)}
  assert len(perms) > 1


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=3), dtype=st.sampled_from([torch.float32, torch.int32, torch.int64]),
       seed=st.integers(0, 2**16), accumulate=st.booleans())
def test_fuzz_five_ops(shape, dtype, seed, accumulate, counter):
  """Random shapes (empty included) and dtypes: topk, index, index_put_, masked_select, randperm against the CPU."""
  g = torch.Generator().manual_seed(seed)
  x = (torch.randn(*shape, generator=g) * 10).to(dtype)
  idx = torch.randint(0, max(shape[0], 1), (3,), generator=g) if shape[0] else torch.zeros(0, dtype=torch.int64)
  mask = torch.rand(*shape, generator=g) > 0.5
  k = min(shape[-1], 2)
  tx, tidx, tmask = x.to("tiny"), idx.to("tiny"), mask.to("tiny")
  counter.clear()
  tb.reset_stats()
  got_topk = torch.topk(tx, k)
  got_index = tx[tidx]
  got_put = tx.clone().index_put_((tidx,), torch.ones((), dtype=dtype, device="tiny"), accumulate=accumulate)
  got_sel = tx.masked_select(tmask)
  got_perm = torch.randperm(shape[-1], device="tiny")
  got_put += 0
  assert tb.stats()["d2h"] == 0 and tb.stats()["size_syncs"] == len(counter) == 1
  ref_topk = torch.topk(x, k)
  assert torch.equal(got_topk.values.cpu(), ref_topk.values) and torch.equal(x.gather(-1, got_topk.indices.cpu()), ref_topk.values)
  assert torch.equal(got_index.cpu(), x[idx]) and torch.equal(got_sel.cpu(), x.masked_select(mask))
  if accumulate or idx.unique().numel() == idx.numel():
    assert torch.equal(got_put.cpu(), x.clone().index_put_((idx,), torch.ones((), dtype=dtype), accumulate=accumulate))
  assert torch.equal(got_perm.cpu().sort().values, torch.arange(shape[-1]))
