"""The pipelined tensor-core matmul on the GPU, on CUDA and NV, against float64 numpy; its backward; stock fallback."""
import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", params=["CUDA", "NV"])
def device(request):
  from tinybounty.runtime import gemm, nv
  nv.install()
  gemm.install()
  yield request.param
  gemm.uninstall()
  nv.uninstall()


def rand(*shape, seed=0): return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("dtype", ["half", "bfloat16"])
@pytest.mark.parametrize("shape", [(128, 32, 128), (256, 512, 384), (1024, 4096, 2048)])
def test_matches_float64(device, dtype, shape):
  from tinygrad import Tensor, dtypes
  from tinygrad.uop.ops import Ops
  m, k, n = shape
  dt = getattr(dtypes, dtype)
  a_np, b_np = rand(m, k), rand(k, n, seed=1)
  a, b = Tensor(a_np, device=device).cast(dt).realize(), Tensor(b_np, device=device).cast(dt).realize()
  c = a @ b
  assert any(u.op is Ops.PROGRAM and u.arg.name.startswith("gemm_") for u in c.schedule_linear().toposort()), "not routed to gemm"
  out = (a @ b).float().numpy()
  ref = a.float().numpy().astype(np.float64) @ b.float().numpy().astype(np.float64)
  assert np.isfinite(out).all()
  assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < {"half": 2e-3, "bfloat16": 1e-2}[dtype]


def test_backward(device):
  from tinygrad import Tensor, dtypes
  a_np, b_np, g_np = rand(256, 128), rand(128, 384, seed=1), rand(256, 384, seed=2)
  a, b = Tensor(a_np, device=device).cast(dtypes.half), Tensor(b_np, device=device).cast(dtypes.half)
  a, b = a.realize(), b.realize()
  ((a @ b).float() * Tensor(g_np, device=device)).sum().backward()
  a16, b16 = a.float().numpy().astype(np.float64), b.float().numpy().astype(np.float64)
  np.testing.assert_allclose(a.grad.float().numpy(), g_np @ b16.T, rtol=2e-2, atol=5e-2)
  np.testing.assert_allclose(b.grad.float().numpy(), a16.T @ g_np, rtol=2e-2, atol=5e-2)


def test_jit_replays_new_inputs(device):
  from tinygrad import Tensor, TinyJit, dtypes
  step = TinyJit(lambda x, y: (x @ y).realize())
  for s in range(4):
    a_np, b_np = rand(256, 256, seed=s), rand(256, 128, seed=s + 10)
    out = step(Tensor(a_np, device=device).cast(dtypes.half).realize(), Tensor(b_np, device=device).cast(dtypes.half).realize()).float().numpy()
    ref = a_np.astype(np.float16).astype(np.float64) @ b_np.astype(np.float16).astype(np.float64)
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 2e-3
