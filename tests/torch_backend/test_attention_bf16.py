"""scaled_dot_product_attention in bfloat16 on the tiny device follows PyTorch's fused-attention definition: float32
scores and softmax, the exponentials rounded to bf16 before the GEMM with v, float32 accumulation, one final rounding
(torch_backend/attention.py). The reference is that definition in float64; an element may differ only where the
float32 arithmetic's own error (measured here, PyTorch's and tiny's float32 exp) can move a rounding across a bf16
midpoint."""
import math

import pytest
import torch
import torch.nn.functional as F

import tinybounty.torch_backend  # noqa: F401 - registers the device


def _inputs(L: int, S: int, D: int = 48, H: int = 6, seed: int = 0):
  g = torch.Generator().manual_seed(seed)
  q, k, v = (torch.randn(1, H, n, D, generator=g).bfloat16() for n in (L, S, S))
  return q, k, v


def _scores(q, k, mask, dtype):
  s = torch.matmul(q.to(dtype), k.to(dtype).transpose(-2, -1)) * torch.tensor(1 / math.sqrt(q.size(-1)), dtype=dtype)
  return s.masked_fill(~mask, float("-inf"))


def _bf16(x: torch.Tensor) -> torch.Tensor: return x.to(torch.bfloat16).double()


def _fused_exact(q, k, v, mask) -> torch.Tensor:
  s = _scores(q, k, mask, torch.float64)
  e = torch.exp(s - s.amax(-1, keepdim=True))
  return (_bf16(e) @ v.double()) / e.sum(-1, keepdim=True)


def _check_fused_definition(got: torch.Tensor, q, k, v, mask) -> None:
  s = _scores(q, k, mask, torch.float64)
  m = s.amax(-1, keepdim=True)
  e = torch.exp(s - m)
  total = e.sum(-1, keepdim=True)
  p = _bf16(e)
  exact = (p @ v.double()) / total
  want = _bf16(exact)
  # float32's own error on the exponentials: PyTorch CPU's and tiny's float32 exp of the same float32 arguments
  d32 = (_scores(q, k, mask, torch.float32) - _scores(q, k, mask, torch.float32).amax(-1, keepdim=True))
  live = mask.expand_as(e)
  eps = max(float(((torch.exp(d32).double() - e).abs() / e)[live].max()),
            float(((torch.exp(d32.to("tiny")).cpu().double() - e).abs() / e)[live].max()), 2.0 ** -24)
  # a row is ambiguous when some exponential's bf16 rounding is not settled within twice that error
  row_open = (_bf16(e * (1 - 2 * eps)) != _bf16(e * (1 + 2 * eps))).any(-1, keepdim=True)
  # an output is ambiguous when its final rounding is not settled within float32's accumulation error
  bound = 2 * eps * exact.abs() + k.size(-2) * 2.0 ** -24 * (p @ v.double().abs()) / total
  out_open = _bf16(exact - bound) != _bf16(exact + bound)
  settled = ~(row_open | out_open)
  assert settled.float().mean() > 0.9, "the check would be vacuous"
  bad = (got.double() != want) & settled
  assert not bad.any(), f"{int(bad.sum())} of {int(settled.sum())} settled elements differ from the fused definition"


@pytest.mark.parametrize("L,S", [(9, 16), (1, 16), (1, 40)])
def test_sdpa_bf16_bool_mask_follows_fused_definition(L, S):
  """gpt-fast's call: prefill (L query rows) or decode (one row) against a KV cache of S, a boolean causal mask row."""
  q, k, v = _inputs(L, S)
  mask = torch.ones(S, S, dtype=torch.bool).tril()[None, None, S - L:] if L > 1 else torch.ones(1, 1, 1, S, dtype=torch.bool)
  mask = mask.clone()
  mask[..., S - 3:] = False  # cache slots not written yet
  got = F.scaled_dot_product_attention(q.to("tiny"), k.to("tiny"), v.to("tiny"), attn_mask=mask.to("tiny")).cpu()
  _check_fused_definition(got, q, k, v, mask)


def test_sdpa_bf16_is_causal_and_float_mask():
  q, k, v = _inputs(12, 12, seed=1)
  causal = torch.ones(12, 12, dtype=torch.bool).tril()
  got = F.scaled_dot_product_attention(q.to("tiny"), k.to("tiny"), v.to("tiny"), is_causal=True).cpu()
  _check_fused_definition(got, q, k, v, causal)
  additive = torch.zeros(12, 12, dtype=torch.bfloat16).masked_fill(~causal, float("-inf"))
  got = F.scaled_dot_product_attention(q.to("tiny"), k.to("tiny"), v.to("tiny"), attn_mask=additive.to("tiny")).cpu()
  _check_fused_definition(got, q, k, v, causal)


def test_sdpa_bf16_fully_masked_row_is_zero_like_cpu():
  q, k, v = _inputs(2, 4)
  mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
  got = F.scaled_dot_product_attention(q.to("tiny"), k.to("tiny"), v.to("tiny"), attn_mask=mask.to("tiny")).cpu()
  ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
  assert torch.equal(got[..., 1, :], ref[..., 1, :]) and not got[..., 1, :].any()


def test_sdpa_bf16_with_grad_keeps_the_differentiable_decomposition():
  """Autograd must still see SDPA's decomposition: gradients flow to q, k and v (the math path, not the fused kernel)."""
  q, k, v = (t.to("tiny").requires_grad_() for t in _inputs(4, 4))
  out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
  out.float().sum().backward()
  assert all(t.grad is not None and t.grad.shape == t.shape and bool(torch.isfinite(t.grad.cpu().float()).all()) for t in (q, k, v))


def test_sdpa_bf16_compiled_is_the_same_op(recwarn):
  """torch.compile(backend="tiny") lowers SDPA to the same table op (no eager fallback), so compiled equals eager."""
  q, k, v = _inputs(9, 16)
  mask = torch.ones(16, 16, dtype=torch.bool).tril()[None, None, 7:]
  args = [t.to("tiny") for t in (q, k, v, mask)]
  def attend(q, k, v, mask): return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
  with torch.no_grad():
    compiled = torch.compile(attend, backend="tiny", fullgraph=True)(*args).cpu()
    eager = attend(*args).cpu()
  assert not [w for w in recwarn if "runs eagerly" in str(w.message)]
  assert torch.equal(compiled, eager)
  _check_fused_definition(compiled, q, k, v, mask)


def test_sdpa_bf16_with_flash_disabled_is_the_math_path_as_on_cpu():
  """gpt-fast's generate.py decodes with flash disabled: PyTorch CPU then runs the math path (float32, one rounding at the
  end), and so must tiny: its result is the float64 softmax attention rounded once, within float32's error."""
  q, k, v = _inputs(1, 16, seed=2)
  mask = torch.ones(1, 1, 1, 16, dtype=torch.bool)
  with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
    assert torch._fused_sdp_choice(q, k, v, mask) == 0  # the CPU's choice: math
    got = F.scaled_dot_product_attention(q.to("tiny"), k.to("tiny"), v.to("tiny"), attn_mask=mask.to("tiny")).cpu()
  exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
  fused = _bf16(_fused_exact(q, k, v, mask))
  # the math path's result is the exact one rounded, wherever float32's accumulation error cannot move that rounding
  probs = torch.softmax(_scores(q, k, mask, torch.float64), -1)
  bound = k.size(-2) * 2.0 ** -24 * (probs @ v.double().abs()) + 4 * 2.0 ** -24 * exact.abs()
  settled = _bf16(exact - bound) == _bf16(exact + bound)
  assert settled.float().mean() > 0.9, "the check would be vacuous"
  assert torch.equal(got.double()[settled], _bf16(exact)[settled])
  assert (got.double() != fused).any()  # and it is not the fused definition
