"""Half-precision math computed in float32 and rounded once, as PyTorch's kernels do ("opmath"): within an ulp of the
exact result beyond float32's own error, where rounding every intermediate to half (tinygrad's default) is far off."""
import pytest
import torch

import tinybounty.torch_backend  # noqa: F401

torch.manual_seed(0)
X, G, P = (torch.randn(64, 64) * 3).half(), torch.randn(64, 64).half(), torch.randn(64, 64).half()


def excess_ulps(got: torch.Tensor, exact: torch.Tensor, allowance: float, floor: float) -> float:
  """The largest distance from the exact value beyond `allowance` (absolute), in units of half's last place at the exact
  value (at least at `floor`)."""
  _, exponent = torch.frexp(exact.float().abs().clamp(min=floor))  # |v| = m * 2**exponent, m in [0.5, 1)
  spacing = torch.ldexp(torch.ones_like(exact, dtype=torch.float64), exponent - 11)  # half keeps 11 significant bits
  return (((got.double() - exact).abs() - allowance).clamp(min=0) / spacing).max().item()


# float32 math rounded once to half lands within half an ulp of the float32 result, so within an ulp of the exact
# (float64) value plus float32's own error; that error is taken from PyTorch's float32 result on the same inputs (twice
# it, for an implementation as accurate as PyTorch's within a factor 2), never from what one machine printed: in gelu's
# tail erf's ~4e-7 absolute float32 error is several half ulps of the small result, and it moves with the CPU's vector
# instructions (tinygrad compiles CPU kernels for the host). Rounding every intermediate to half (tinygrad's default) is
# off by several ulps at every magnitude.
@pytest.mark.parametrize("name, fn, max_ulps, floor", [
  ("tanh", torch.tanh, 1, 2 ** -14), ("sigmoid", torch.sigmoid, 1, 2 ** -14), ("softmax", lambda t, g, p: torch.softmax(t, -1), 1, 2 ** -14),
  ("log_softmax", lambda t, g, p: torch.log_softmax(t, -1), 1, 2 ** -14), ("erf", torch.erf, 1, 2 ** -14),
  ("gelu", torch.nn.functional.gelu, 1, 2 ** -14),
  ("sgd update", lambda t, g, p: t.add(g, alpha=-0.0137), 1, 2 ** -14), ("addcmul", lambda t, g, p: t.addcmul(g, p, value=0.3), 1, 2 ** -14),
])
def test_half_ops_round_once(name, fn, max_ulps, floor):
  call = (lambda t, g, p: fn(t)) if fn in (torch.tanh, torch.sigmoid, torch.erf, torch.nn.functional.gelu) else fn
  exact = call(X.double(), G.double(), P.double())
  float32_error = (call(X.float(), G.float(), P.float()).double() - exact).abs().max().item()
  got = call(X.to("tiny"), G.to("tiny"), P.to("tiny")).cpu()
  assert got.dtype == torch.float16
  excess = excess_ulps(got, exact, 2 * float32_error, floor)
  assert excess <= max_ulps, f"{name}: {excess:.1f} half ulps from the exact value beyond float32's error ({float32_error:.1e})"


def _reduced_product_dtypes(t: torch.Tensor) -> set:
  """The dtypes of the products that the kernels realizing `t` sum up."""
  from tinygrad.uop.ops import Ops

  from tinybounty.torch_backend.device import unwrap
  kernels = [call.src[0] for call in unwrap(t).schedule_linear().src if call.src[0].op is Ops.SINK]
  reduces = [u for k in kernels for u in k.toposort() if u.op is Ops.REDUCE]
  return {(s.src[0] if s.op is Ops.CAST else s).dtype.name for r in reduces if (s := r.src[0]).op is Ops.MUL or s.op is Ops.CAST}


@pytest.mark.parametrize("name, fn", [
  ("conv", lambda x, w: torch.nn.functional.conv2d(x, w, padding=1)),
  ("conv weight grad", lambda x, w: torch.ops.aten.convolution_backward(x.new_ones(2, 4, 5, 5), x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                                        [False, True, False])[1]),
  ("mm", lambda x, w: x[:, :, :3, :3].flatten(1) @ w.flatten(1).T),
])
def test_half_gemm_products_are_exact(name, fn):
  x, w = torch.randn(2, 3, 5, 5).half().to("tiny"), torch.randn(4, 3, 3, 3).half().to("tiny")
  got = fn(x, w)
  assert got.dtype == torch.float16 and _reduced_product_dtypes(got) == {"float"}, f"{name}: products of half operands rounded to half"


def test_half_products_opt_out_keeps_tinygrads_kernels(monkeypatch):
  from tinybounty.torch_backend import matmul
  monkeypatch.setattr(matmul, "EXACT_HALF_PRODUCTS", False)  # TINY_HALF_PRODUCTS=half: tensor cores over exact products
  x, w = torch.randn(2, 3, 5, 5).half().to("tiny"), torch.randn(4, 3, 3, 3).half().to("tiny")
  assert _reduced_product_dtypes(torch.nn.functional.conv2d(x, w, padding=1)) == {"half"}
  assert _reduced_product_dtypes(x[:, :, :3, :3].flatten(1) @ w.flatten(1).T) == {"half"}


def test_half_results_are_half_values_when_read_as_float():
  """A half gradient read through .float() (the optimizer's opmath reads it so) holds half values, as on the CPU."""
  conv = torch.nn.Conv2d(3, 4, 3, bias=False).half()
  tiny = torch.nn.Conv2d(3, 4, 3, bias=False).half().to("tiny")
  tiny.load_state_dict({k: v.to("tiny") for k, v in conv.state_dict().items()})
  x = torch.randn(2, 3, 5, 5).half()
  tiny(x.to("tiny")).float().sum().backward()
  grad = tiny.weight.grad.float().cpu()
  assert torch.equal(grad.half().float(), grad)
