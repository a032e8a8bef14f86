"""Complex storages as float pairs (torch.polar, view_as_real/complex) and bfloat16 kernels with an old clang."""
import math
import os

import numpy as np
import pytest
import torch

import tinybounty.torch_backend  # noqa: F401 - registers the device
from tinybounty.runtime import bf16_clang


def _rotary_angles(n: int = 2048, head_dim: int = 48) -> torch.Tensor:
  return torch.outer(torch.arange(n).float(), 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)))


def test_polar_real_imag_as_correctly_rounded_as_the_cpu():
  """gpt-fast's rotary table: polar, then .real/.imag. Each value within one float32 ulp of the float64 truth (the CPU's
  libm is within half an ulp): tinygrad's own float64 cos of ~2000 rad is 1.6e-7 off, which this must not inherit."""
  angles = _rotary_angles()
  c = torch.polar(torch.ones_like(angles).to("tiny"), angles.to("tiny"))
  assert c.dtype == torch.complex64 and c.device.type == "tiny" and c.shape == angles.shape
  got = torch.stack([c.real, c.imag], -1).cpu().double().numpy()
  exact = np.stack([np.cos(angles.double().numpy()), np.sin(angles.double().numpy())], -1)
  ref = torch.polar(torch.ones_like(angles), angles)
  cpu_err = np.abs(torch.stack([ref.real, ref.imag], -1).double().numpy() - exact).max()
  assert np.abs(got - exact).max() <= max(cpu_err, 2.0 ** -24), (np.abs(got - exact).max(), cpu_err)


def test_view_as_real_and_complex_share_storage():
  x = torch.randn(3, 4, 2)
  c = torch.view_as_complex(x.to("tiny"))
  assert c.shape == (3, 4) and c.dtype == torch.complex64
  r = torch.view_as_real(c)
  assert r._base is not None and torch.equal(r.cpu(), x)
  r[:, 1, 0] = 7.0  # a write through the real view is seen by the complex tensor's other real view
  assert torch.equal(torch.view_as_real(c)[:, 1, 0].cpu(), torch.full((3,), 7.0))
  assert torch.equal(c.imag.cpu(), x[..., 1])


def test_complex_arithmetic_is_a_clear_error():
  c = torch.view_as_complex(torch.randn(3, 2).to("tiny"))
  with pytest.raises((TypeError, NotImplementedError)): (c * c).real.cpu()


def _bf16_ops(dev: str) -> list[torch.Tensor]:
  g = torch.Generator().manual_seed(0)
  a, b = torch.randn(16, 24, generator=g).bfloat16(), torch.randn(24, 8, generator=g).bfloat16()
  a, b = a.to(dev), b.to(dev)
  outs = (a + 1.5, a * a, a @ b, a.exp(), torch.where(a > 0, a, 0.25), a.float().sum(1).bfloat16(), torch.zeros(5, dtype=torch.bfloat16, device=dev))
  return [x.cpu() for x in outs]


# DEV=CPU, CPU:CLANG, or CPU:CLANG with a target (x86_64,x86-64,f16c): the clang renderer, whatever the arch
@pytest.mark.skipif(os.environ.get("DEV", "CPU").split(":")[:2] not in (["CPU"], ["CPU", "CLANG"]), reason="the clang renderer's bf16 type (DEV=CPU)")
def test_bf16_on_clang_installed_and_not():
  """Installed (by register()): bf16 kernels compile and equal PyTorch CPU's bf16 results. Uninstalled: tinygrad's own
  `__bf16` rendering, which this machine's clang may reject; reinstalled afterwards."""
  assert bf16_clang.installed()
  for got, ref in zip(_bf16_ops("tiny"), _bf16_ops("cpu")): assert torch.equal(got.float(), ref.float())
  bf16_clang.uninstall()
  try:
    assert not bf16_clang.installed()
    from tinygrad import dtypes
    from tinygrad.renderer.cstyle import ClangRenderer
    assert dtypes.bfloat16 not in ClangRenderer.type_map
  finally:
    bf16_clang.install()
  assert bf16_clang.installed()
  assert math.isfinite(float(_bf16_ops("tiny")[0].float().sum()))
