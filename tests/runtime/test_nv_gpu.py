"""DEV=NV on the GPU at hand against DEV=CUDA on the same card: a representative slice of tinygrad's behaviour."""
import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def devs():
  from tinybounty.runtime import nv
  nv.install()
  from tinygrad import Device
  Device["NV"], Device["CUDA"]
  yield "NV", "CUDA"
  nv.uninstall()


def both(devs, fn):
  """fn(device) -> Tensor, run on NV and on CUDA; the two results as numpy."""
  return [fn(d).numpy() for d in devs]


def rand(*shape, seed=0, dtype=np.float32):
  return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_picks_the_chips_own_classes(devs):
  from tinygrad import Device

  from tinybounty.hardware import cuda_sm
  from tinybounty.runtime.nv import qmd_version
  dev = Device["NV"]
  assert dev.arch == f"sm_{cuda_sm()}"
  assert qmd_version(dev.iface.compute_class) == {90: 4, 100: 5, 120: 5}.get(cuda_sm(), 3)


@pytest.mark.parametrize("op", ["add", "mul_exp", "where", "cast_half", "gelu"])
def test_elementwise(devs, op):
  from tinygrad import Tensor, dtypes
  a, b = rand(1000, 333), rand(1000, 333, seed=1)
  f = {"add": lambda x, y: x + y, "mul_exp": lambda x, y: (x * y).exp(), "where": lambda x, y: (x > y).where(x, y),
       "cast_half": lambda x, y: (x + y).cast(dtypes.half).cast(dtypes.float), "gelu": lambda x, y: x.gelu() - y}[op]
  nv_out, cuda_out = both(devs, lambda d: f(Tensor(a, device=d), Tensor(b, device=d)))
  np.testing.assert_allclose(nv_out, cuda_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_reduce(devs, axis):
  from tinygrad import Tensor
  a = rand(2048, 1536)
  e = np.exp(a - a.max(-1, keepdims=True))
  refs = (a.sum(axis), a.max(axis), (e / e.sum(-1, keepdims=True)).sum(axis))
  for f, ref in zip((lambda t: t.sum(axis), lambda t: t.max(axis), lambda t: t.softmax(-1).sum(axis)), refs):
    nv_out, cuda_out = both(devs, lambda d: f(Tensor(a, device=d)))
    np.testing.assert_allclose(nv_out, cuda_out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(nv_out, ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_matmul(devs, dtype):
  from tinygrad import Tensor
  a, b = rand(512, 768, dtype=dtype), rand(768, 384, seed=1, dtype=dtype)
  nv_out, cuda_out = both(devs, lambda d: Tensor(a, device=d) @ Tensor(b, device=d))
  ref = a.astype(np.float64) @ b.astype(np.float64)
  tol = 2e-2 if dtype == "float16" else 1e-3
  np.testing.assert_allclose(nv_out, cuda_out, rtol=tol, atol=tol)
  assert np.linalg.norm(nv_out - ref) / np.linalg.norm(ref) < (1e-2 if dtype == "float16" else 1e-4)


def test_conv2d(devs):
  from tinygrad import Tensor
  x, w = rand(4, 8, 32, 32), rand(16, 8, 3, 3, seed=1)
  nv_out, cuda_out = both(devs, lambda d: Tensor(x, device=d).conv2d(Tensor(w, device=d), padding=1).relu())
  np.testing.assert_allclose(nv_out, cuda_out, rtol=1e-4, atol=1e-4)


def test_jit_replay_with_new_inputs(devs):
  from tinygrad import Tensor, TinyJit
  outs = {}
  for d in devs:
    w = Tensor(rand(64, 64, seed=9), device=d)
    step = TinyJit(lambda x: ((x @ w).relu() + 1).sum(1).realize())
    outs[d] = [step(Tensor(rand(32, 64, seed=s), device=d)).numpy() for s in range(6)]  # 2 warm-up, then graph replay
  for a, b in zip(*outs.values()): np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  assert not np.allclose(outs["NV"][4], outs["NV"][5]), "replay must see the new inputs"


def test_copies(devs):
  from tinygrad import Tensor
  big = np.random.default_rng(3).integers(0, 255, 64 << 20, dtype=np.uint8)  # 64 MiB: through the copy engine in chunks
  t = Tensor(big, device="NV").realize()
  np.testing.assert_array_equal(t.numpy(), big)
  np.testing.assert_array_equal(t.to("CUDA").numpy(), big)  # NV -> CUDA
  np.testing.assert_array_equal(Tensor(big[:4096], device="CUDA").to("NV").numpy(), big[:4096])  # CUDA -> NV
  np.testing.assert_array_equal(t.shrink(((1 << 20, 2 << 20),)).contiguous().numpy(), big[1 << 20:2 << 20])  # offset view


def test_copy_and_compute_queues_interleave(devs):
  """Uploads through the copy queue while the compute queue works on earlier uploads: signals must order them."""
  from tinygrad import Device, Tensor
  host = [rand(1024, 1024, seed=s) for s in range(8)]
  acc = Tensor.zeros(1024, 1024, device="NV").contiguous().realize()
  for h in host: acc = (acc + Tensor(h, device="NV") * 2).realize()
  Device["NV"].synchronize()
  np.testing.assert_allclose(acc.numpy(), 2 * np.sum(host, axis=0), rtol=1e-4, atol=1e-4)
