import pytest
from tinygrad import Context, Tensor


@pytest.fixture(autouse=True)
def seeded_noopt():
  """Same tinygrad RNG state in every test; NOOPT=1 because these tests check numbers, and it halves compile time on CI."""
  Tensor.manual_seed(0)
  with Context(NOOPT=1): yield
