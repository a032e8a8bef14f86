"""models.matvec on tinygrad's PYTHON device (the one CPU-side device with GPU-style locals and shared memory): the
matvec schedule reaches the decode products tinygrad's heuristic misses, results stay within float32's summation bound
of a float64 reference, and uninstall() gives tinygrad's own schedule back."""
import numpy as np
import pytest
import tinygrad.codegen.opt.heuristic as heuristic
import tinygrad.engine.worker as worker
from tinygrad import Tensor, dtypes
from tinygrad.codegen.opt import OptOps
from tinygrad.helpers import Context

from tinybounty.models import matvec

EPS32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff


@pytest.fixture(autouse=True)
def python_device():
  """Every test on the PYTHON device with the heuristic on, compiling in this process (the spy sees each kernel), stock after."""
  with Context(DEV="PYTHON", PARALLEL=0, NOOPT=0): yield  # NOOPT: the models conftest turns the heuristic off
  matvec.uninstall()


class Schedules:
  """The opts tinygrad's hand-coded step chose for each reduce kernel compiled after arm(): (shape, opts)."""
  def __init__(self, monkeypatch):
    self.seen: list[tuple[tuple, list]] = []
    self.monkeypatch = monkeypatch

  def arm(self) -> None:  # after install()/uninstall(), which rebind the heuristic
    inner = heuristic.hand_coded_optimizations
    def spy(k):
      out = inner(k)
      self.seen.append((tuple(k.full_shape), list(out.applied_opts)))
      return out
    self.monkeypatch.setattr(heuristic, "hand_coded_optimizations", spy)

  def grouped(self, shape=None) -> bool:
    return any((shape is None or s == shape) and any(o.op is OptOps.GROUP for o in opts) for s, opts in self.seen)


@pytest.fixture
def schedules(monkeypatch):
  return Schedules(monkeypatch)


def within_sum_bound(got: np.ndarray, x: np.ndarray, w: np.ndarray) -> None:
  """|got - x.w| <= gamma_n * sum_k |x_k w_k| per output (n the reduce length), the float32 summation bound, for any order."""
  ref, mag = x.astype(np.float64) @ w.astype(np.float64).T, np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T
  n = x.shape[-1]
  bound = n * EPS32 / (1 - n * EPS32) * mag + 1e-30
  assert np.all(np.abs(got - ref) <= bound), f"max excess {np.max(np.abs(got - ref) / bound):.3g}x the bound"


def bf16_weights(rng, *shape) -> Tensor:
  return Tensor(rng.standard_normal(shape).astype(np.float32)).cast(dtypes.bfloat16).realize()


def test_mixed_precision_matvec_gets_the_schedule_and_stays_within_the_bound(schedules):
  rng = np.random.default_rng(0)
  w, x = bf16_weights(rng, 192, 96), Tensor(rng.standard_normal((1, 96)).astype(np.float32)).realize()
  matvec.install()
  schedules.arm()
  scale = Tensor([0.5])  # an inline vector expression (as a norm fused into lm_head), exact here: a power of two
  got = ((x * scale) @ w.T).numpy()
  assert schedules.grouped((192, 96)), schedules.seen
  within_sum_bound(got, x.numpy() * 0.5, w.float().numpy())


def test_gathered_expert_rows_get_the_schedule_and_stay_within_the_bound(schedules):
  rng = np.random.default_rng(1)
  E, K, I, D = 6, 2, 32, 48
  gate = Tensor(rng.standard_normal((E, I, D)).astype(np.float32)).realize()
  x = Tensor(rng.standard_normal((1, D)).astype(np.float32)).realize()
  idx = Tensor([[4, 1]], dtype=dtypes.int32).realize()
  matvec.install()
  schedules.arm()
  got = (x.reshape(1, 1, 1, D) @ gate[idx].transpose(-1, -2)).reshape(K, I).numpy()  # a decode step's gathered gate_proj
  assert schedules.grouped(), schedules.seen
  for k, e in enumerate([4, 1]): within_sum_bound(got[k:k + 1], x.numpy(), gate.numpy()[e])


def test_uninstall_gives_tinygrads_schedule_back(schedules):
  stock_hco, stock_init = heuristic.hand_coded_optimizations, worker._init_worker
  matvec.install()
  matvec.install()  # twice is harmless
  assert matvec.installed() and heuristic.hand_coded_optimizations is not stock_hco
  matvec.uninstall()
  assert heuristic.hand_coded_optimizations is stock_hco and worker._init_worker is stock_init and not matvec.installed()
  rng = np.random.default_rng(2)
  w, x = bf16_weights(rng, 160, 80), Tensor(rng.standard_normal((1, 80)).astype(np.float32)).realize()
  schedules.arm()
  got = (x @ w.T).numpy()
  assert schedules.seen and not schedules.grouped((160, 80)), f"tinygrad's own heuristic groups no mixed-precision matvec: {schedules.seen}"
  within_sum_bound(got, x.numpy(), w.float().numpy())


def test_plain_float_products_are_left_to_tinygrads_own_test(monkeypatch):
  """Two plain float32 loads: tinygrad's heuristic already handles them, so matvec_factors stays out (returns None)."""
  seen, stock = [], heuristic.hand_coded_optimizations
  def record(k):
    seen.append(matvec.matvec_factors(k))
    return stock(k)
  monkeypatch.setattr(heuristic, "hand_coded_optimizations", record)
  rng = np.random.default_rng(3)
  (Tensor(rng.standard_normal((1, 64)).astype(np.float32)) @ Tensor(rng.standard_normal((64, 128)).astype(np.float32))).realize()
  assert seen and all(f is None for f in seen)
