"""scaled_mm on the GPU against torch._scaled_mm on the same card, from the same fp8 bytes and scales."""
import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("shape", [(256, 512, 128), (1024, 1024, 1024)])
def test_scaled_mm_matches_torch(fmt, shape):
  torch = pytest.importorskip("torch")
  from tinygrad import Tensor, dtypes

  from tinybounty.hardware import cuda_sm
  from tinybounty.runtime.fp8 import FP8_MAX, scaled_mm
  if (cuda_sm() or 0) < 89: pytest.skip("fp8 tensor cores need sm_89+")
  m, k, n = shape
  tdt, tg_dt = {"e4m3": (torch.float8_e4m3fn, dtypes.fp8e4m3), "e5m2": (torch.float8_e5m2, dtypes.fp8e5m2)}[fmt]
  g = torch.Generator(device="cuda").manual_seed(m + k)
  a, b = torch.randn(m, k, device="cuda", generator=g) * 3, torch.randn(k, n, device="cuda", generator=g)
  sa, sb = (a.abs().max() / FP8_MAX[tg_dt]).float(), (b.abs().max() / FP8_MAX[tg_dt]).float()
  a8, b8 = (a / sa).to(tdt), (b / sb).to(tdt)
  ref = torch._scaled_mm(a8, b8.t().contiguous().t(), scale_a=sa, scale_b=sb, out_dtype=torch.float32).cpu().numpy()
  ta = Tensor(a8.view(torch.uint8).cpu().numpy(), device="CUDA").bitcast(tg_dt)
  tb = Tensor(b8.view(torch.uint8).cpu().numpy(), device="CUDA").bitcast(tg_dt)
  out = scaled_mm(ta, tb, Tensor(sa.item()), Tensor(sb.item()), out_dtype=dtypes.float32).numpy()
  # same fp8 inputs, both accumulate in fp32: only summation order differs
  assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5
