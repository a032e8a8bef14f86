"""half_rounding.install(): a float32 -> half -> float32 round trip inside a kernel rounds to half (stock tinygrad 0.14
folds it away), in the parent and in the compile workers; uninstall() brings back stock's fold."""
import numpy as np
import pytest
from tinygrad import Tensor, dtypes

from tinybounty.torch_backend import half_rounding

VALUES = np.array([1.0001, 2.0003, 3.1234567], np.float32)


def _round_trips(*scales: float) -> list[np.ndarray]:
  x = Tensor(VALUES).realize()
  outs = [(x * s).cast(dtypes.half).cast(dtypes.float) for s in scales]
  Tensor.realize(*outs)  # more than one kernel: lowered in the worker pool where there is one
  return [o.numpy() for o in outs]


@pytest.fixture
def restore():
  was = half_rounding.installed()
  yield
  (half_rounding.install if was else half_rounding.uninstall)()


def test_stock_folds_the_round_trip(restore):
  half_rounding.uninstall()
  np.testing.assert_array_equal(_round_trips(1.5)[0], VALUES * np.float32(1.5))


@pytest.mark.parametrize("scales", [(1.5,), (1.25, 1.75, 2.5)])
def test_installed_rounds_to_half(restore, scales):
  half_rounding.install()
  for got, s in zip(_round_trips(*scales), scales):
    np.testing.assert_array_equal(got, (VALUES * np.float32(s)).astype(np.float16).astype(np.float32))
