import pytest

from tinybounty.validate.avgpool3d import CASES, PoolCase, max_error, reference

# CI runs upstream's case both ways and two more; the GPU script (bench/correctness_gpu.py) runs all of CASES on CUDA
CI_CASES = [CASES[0], CASES[1], PoolCase((2, 3, 9, 10, 11), 3, 2, 1, False), PoolCase((1, 4, 7, 7, 7), 3, 1, 1, True)]


@pytest.mark.parametrize("case", CI_CASES, ids=lambda c: c.name)
def test_avg_pool3d_matches_numpy_forward_and_backward(case):
  assert max_error(case) < 1e-5


def test_reference_counts_padding_as_asked():
  import numpy as np
  x = np.ones((1, 1, 4, 4, 4), np.float32)
  incl, _ = reference(x, np.ones, PoolCase(x.shape, 2, 2, 1, True))
  excl, _ = reference(x, np.ones, PoolCase(x.shape, 2, 2, 1, False))
  assert incl[0, 0, 0, 0, 0] == pytest.approx(1 / 8) and excl.min() == pytest.approx(1.0)


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_avg_pool3d_on_cuda(case):
  assert max_error(case, device="CUDA") < 1e-4
