"""Tolerances that come from the reference, not from one machine's output.

The tiny device computes in float32 with other kernels (and another compiler's code for the host CPU) than PyTorch's
CPU, so "equal to PyTorch float32 within 1e-5" tests how two float32 algorithms agree on this machine, and fails on the
next machine when PyTorch's own float32 error there is above 1e-5 (it was: pinv's gradient, 1.6e-5 on an AMD EPYC).
Instead both are measured against a float64 evaluation of the same function, and the tiny device may be off it by
`FACTOR` times the error a float32 computation is entitled to there, which is the largest of:
- PyTorch float32's own error against float64, element by element (one float32 algorithm's actual error);
- the function's sensitivity to rounding its inputs to float32: the float64 result moved by perturbing every input
  by one unit roundoff, two random sign patterns (the op's condition times u, what any stable float32 algorithm
  may lose even when PyTorch's happens to be lucky at that element);
- one unit roundoff of the element and of the tensor's largest element (a normwise floor: a float32 algorithm's
  intermediate roundings are relative to the sizes it adds up, not to a result that cancels to near zero).
"""
import torch

U32 = 2.0 ** -24  # float32 unit roundoff
# two float32 algorithms for one function each err up to c(n) u cond with c(n) a small multiple of the sizes summed;
# FACTOR allows tiny's constant to be that of PyTorch's times 2^5 (5 of float32's 24 bits), with n <= 8 in these tests
FACTOR = 32.0


def bound(ref: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
  """Elementwise allowed distance from the float64 `ref`: FACTOR times the largest of the given float32 error scales
  (PyTorch's error, the perturbation sensitivity) and one unit roundoff of the element and of the tensor's largest."""
  ref = ref.double()
  scale = torch.maximum(ref.abs(), ref.abs().max() if ref.numel() else torch.zeros((), dtype=ref.dtype)) * U32
  for o in others: scale = torch.maximum(scale, o.double())
  return FACTOR * scale


def assert_within(got: torch.Tensor, ref: torch.Tensor, allowed: torch.Tensor, what: str = "") -> None:
  """|got - ref| <= allowed elementwise, with non-finite values equal (NaN to NaN, inf to the same inf)."""
  got, ref = got.double(), ref.double()
  assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} vs reference {tuple(ref.shape)}"
  finite = torch.isfinite(ref)
  assert torch.equal(torch.isfinite(got), finite), f"{what}: non-finite at other places than the reference"
  assert torch.equal(got[~finite].nan_to_num(posinf=1, neginf=-1, nan=0), ref[~finite].nan_to_num(posinf=1, neginf=-1, nan=0)), \
    f"{what}: non-finite values differ from the reference's"
  err = (got - ref).abs().where(finite, 0)
  worst = (err / allowed.where(finite, 1)).nan_to_num(nan=0, posinf=float("inf"))
  if worst.numel():
    at = worst.argmax()
    assert worst.max() <= 1, \
      f"{what}: {err.flatten()[at].item():.3g} from float64, {worst.max().item():.2f}x the allowed {allowed.flatten()[at].item():.3g}"
