"""Views alias their base: strides match the CPU's and in-place writes through any view show up in every other view."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def pair(shape=(4, 6)):
  x = torch.arange(float(torch.Size(shape).numel())).reshape(shape)
  return x, x.to("tiny")


VIEWS = {
  "view": lambda x: x.view(6, 4), "reshape": lambda x: x.reshape(2, 12), "permute": lambda x: x.permute(1, 0),
  "transpose": lambda x: x.transpose(0, 1), "t": lambda x: x.t(), "expand": lambda x: x[:1].expand(3, 6),
  "slice": lambda x: x[1:3, ::2], "select": lambda x: x[:, 2], "narrow": lambda x: x.narrow(1, 1, 3),
  "diagonal": lambda x: x.diagonal(1), "unfold": lambda x: x.unfold(1, 3, 2), "as_strided": lambda x: x.as_strided((3, 3), (5, 1), 2),
  "squeeze": lambda x: x[:1].squeeze(0), "unsqueeze": lambda x: x.unsqueeze(1), "flatten_T": lambda x: x.t()[::2],
}


@pytest.mark.parametrize("name", VIEWS)
def test_view_values_and_strides(name):
  x, t = pair()
  a, b = VIEWS[name](x), VIEWS[name](t)
  assert a.shape == b.shape and a.stride() == b.stride() and a.storage_offset() == b.storage_offset()
  assert a.is_contiguous() == b.is_contiguous()
  assert torch.equal(b.cpu(), a)


@pytest.mark.parametrize("mutate", [
  lambda x: x[:, 1].add_(1), lambda x: x.t().mul_(2), lambda x: x[1:3, 2:].fill_(-1),
  lambda x: x.view(24)[::5].zero_(), lambda x: x.diagonal().copy_(torch.tensor([9., 8., 7., 6.]).to(x.device)),
  lambda x: x[:, 1:4].index_put_((torch.tensor([0, 2]).to(x.device),), torch.tensor(5.).to(x.device)),
  lambda x: x.permute(1, 0)[2:4].sub_(x[0, :4].clone()), lambda x: x.unsqueeze(0)[0, 2].div_(2),
])
def test_inplace_through_view_writes_base_and_siblings(mutate):
  x, t = pair()
  sibling_x, sibling_t = x.t()[1:], t.t()[1:]
  mutate(x)
  mutate(t)
  assert torch.equal(t.cpu(), x) and torch.equal(sibling_t.cpu(), sibling_x)


def test_write_to_expanded_view_is_refused_like_cpu():
  x, t = pair((1, 3))
  with pytest.raises(RuntimeError, match="single memory location"):
    t.expand(2, 3).add_(1)
  with pytest.raises(RuntimeError):
    x.expand(2, 3).add_(1)


def test_views_share_version_counter_and_base():
  _, t = pair()
  v = t[1]
  assert v._base is t
  before = t._version
  v.add_(1)
  assert t._version > before


OPS = ["permute", "transpose", "slice", "select", "narrow", "unsqueeze", "diagonal", "reshape_copy", "expand_read", "flip_read"]


def apply_view(x: torch.Tensor, op: str, r: int) -> torch.Tensor:
  if x.ndim == 0: return x.unsqueeze(0)
  d = r % x.ndim
  n = x.shape[d]
  if op == "permute": return x.permute(*[(i + r) % x.ndim for i in range(x.ndim)])
  if op == "transpose": return x.transpose(d, (d + 1) % x.ndim)
  if op == "slice": return x.narrow(d, min(r % 2, n), max(n - 1 - r % 2, 0))[(slice(None),) * d + (slice(None, None, 1 + r % 2),)]
  if op == "select": return x.select(d, r % n) if n and x.ndim > 1 else x
  if op == "narrow": return x.narrow(d, r % max(n, 1), 1) if n else x
  if op == "unsqueeze": return x.unsqueeze(d) if x.ndim < 5 else x
  if op == "diagonal": return x.diagonal(0, 0, 1) if x.ndim >= 2 else x
  if op == "reshape_copy": return x.reshape(-1) if x.is_contiguous() else x
  if op == "expand_read": return x.unsqueeze(0).expand(2, *x.shape)
  return x


MUTATIONS = ["add_", "mul_", "fill_", "zero_", "copy_"]


def mutate(x: torch.Tensor, how: str, value: float) -> None:
  if how == "add_": x.add_(value)
  elif how == "mul_": x.mul_(value)
  elif how == "fill_": x.fill_(value)
  elif how == "zero_": x.zero_()
  else: x.copy_(torch.full(x.shape, value).to(x.device))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       chain=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 7)), min_size=1, max_size=4),
       writes=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(MUTATIONS), st.integers(-3, 3)), min_size=1, max_size=3))
def test_fuzz_view_chains_with_inplace_writes(shape, chain, writes):
  x = torch.arange(float(torch.Size(shape).numel())).reshape(shape)
  t = x.to("tiny")
  views_x, views_t = [x], [t]
  for op, r in chain:
    views_x.append(apply_view(views_x[-1], op, r))
    views_t.append(apply_view(views_t[-1], op, r))
    assert views_x[-1].stride() == views_t[-1].stride() and views_x[-1].storage_offset() == views_t[-1].storage_offset()
  for k, how, value in writes:
    vx, vt = views_x[k % len(views_x)], views_t[k % len(views_t)]
    try:
      mutate(vx, how, float(value))
    except RuntimeError:  # the CPU refuses (overlapping memory): tiny must refuse too
      with pytest.raises(RuntimeError):
        mutate(vt, how, float(value))
      continue
    mutate(vt, how, float(value))
  for vx, vt in zip(views_x, views_t):
    assert torch.equal(vt.cpu(), vx)
