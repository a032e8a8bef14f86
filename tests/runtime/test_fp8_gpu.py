"""scaled_mm on the GPU: against float64 on the same fp8 values, and against torch._scaled_mm from the same fp8 bytes."""
import numpy as np
import pytest

pytestmark = pytest.mark.gpu
FORMATS = ("e4m3", "e5m2")


@pytest.fixture(scope="module", params=["CUDA", "NV"])
def device(request):
  from tinybounty.hardware import cuda_sm
  from tinybounty.runtime import nv
  if (cuda_sm() or 0) < 89: pytest.skip("fp8 tensor cores need sm_89+")
  nv.install()
  yield request.param
  nv.uninstall()


def fp8_pair(fmt, m, k, n, device, lazy=False):
  """Quantized a (M, K) and b (K, N) on `device` (unrealized if lazy), the float64 values they hold, and their scales."""
  from tinygrad import Tensor, dtypes

  from tinybounty.runtime.fp8 import quantize
  rng = np.random.default_rng(m + k + n)
  dt = {"e4m3": dtypes.fp8e4m3, "e5m2": dtypes.fp8e5m2}[fmt]
  (a, sa), (bt, sb) = quantize(Tensor(rng.standard_normal((m, k), dtype=np.float32) * 3, device=device), dt), \
                      quantize(Tensor(rng.standard_normal((n, k), dtype=np.float32), device=device), dt)
  if not lazy: a, bt, sa, sb = a.realize(), bt.realize(), sa.realize(), sb.realize()
  return a, bt.T, sa, sb, lambda: (a.float().numpy().astype(np.float64), bt.float().numpy().astype(np.float64).T)


@pytest.mark.parametrize("lazy", [False, True], ids=["realized", "lazy"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(256, 512, 128), (1024, 2048, 1024), (112, 96, 56)], ids=["kernel", "kernel-large", "stock"])
def test_scaled_mm_is_exact_up_to_summation_order(device, fmt, shape, lazy):
  from tinygrad import dtypes

  from tinybounty.runtime.fp8 import scaled_mm
  from tinybounty.runtime.gemm import wgmma_device
  if shape[0] % 128 == 0 and wgmma_device(device): pytest.skip("Hopper's fp8 wgmma sums in fewer bits than fp32: see test_wgmma_*")
  a, b, sa, sb, values = fp8_pair(fmt, *shape, device, lazy)
  out = scaled_mm(a, b, sa, sb, out_dtype=dtypes.float32).numpy()
  a64, b64 = values()
  ref = a64 @ b64 * sa.item() * sb.item()
  assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5


@pytest.mark.parametrize("shape", [(256, 512, 128), (1024, 2048, 1024)])
def test_scaled_mm_matches_torch(device, shape):
  torch = pytest.importorskip("torch")
  from tinygrad import Tensor, dtypes

  from tinybounty.runtime.fp8 import scaled_mm
  m, k, n = shape
  g = torch.Generator(device="cuda").manual_seed(m + k)
  a, bt = torch.randn(m, k, device="cuda", generator=g) * 3, torch.randn(n, k, device="cuda", generator=g)
  sa, sb = (a.abs().max() / 448).float(), (bt.abs().max() / 448).float()
  a8, bt8 = (a / sa).to(torch.float8_e4m3fn), (bt / sb).to(torch.float8_e4m3fn)
  ref = torch._scaled_mm(a8, bt8.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16).float().cpu().numpy()
  # the same fp8 values (exactly representable, so the device's own cast reproduces the bytes)
  ta = Tensor(a8.float().cpu().numpy(), device=device).cast(dtypes.fp8e4m3).realize()
  tbt = Tensor(bt8.float().cpu().numpy(), device=device).cast(dtypes.fp8e4m3).realize()
  out = scaled_mm(ta, tbt.T, Tensor(sa.item(), device=device), Tensor(sb.item(), device=device)).float().numpy()
  assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-2  # both round the fp32 sums to bf16


@pytest.mark.parametrize("fast_accum", [False, True], ids=["default", "fast"])
@pytest.mark.parametrize("shape", [(256, 512, 128), (1024, 2048, 1024), (512, 8192, 256)])
def test_wgmma_is_as_close_as_torchs(device, shape, fast_accum):
  """Against float64 on the same e4m3 values: no further off than torch._scaled_mm (same use_fast_accum) is on them."""
  torch = pytest.importorskip("torch")
  from tinygrad import dtypes

  from tinybounty.runtime.fp8 import scaled_mm
  a, b, sa, sb, values = fp8_pair("e4m3", *shape, device)
  out = scaled_mm(a, b, sa, sb, out_dtype=dtypes.float32, fast_accum=fast_accum).numpy()
  a64, b64 = values()
  ref = a64 @ b64 * sa.item() * sb.item()
  ta, tbt = (torch.from_numpy(x).cuda().to(torch.float8_e4m3fn) for x in (a64.astype(np.float32), b64.T.astype(np.float32)))
  ts = [torch.tensor(s.item(), device="cuda") for s in (sa, sb)]
  tout = torch._scaled_mm(ta, tbt.t(), scale_a=ts[0], scale_b=ts[1], out_dtype=torch.float32, use_fast_accum=fast_accum).cpu().numpy()
  err, torch_err = (float(np.linalg.norm(x - ref) / np.linalg.norm(ref)) for x in (out, tout))
  assert err <= 1.5 * torch_err + 1e-6, (err, torch_err)
