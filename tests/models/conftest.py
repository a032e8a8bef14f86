import pytest
from tinygrad import Tensor


@pytest.fixture(autouse=True)
def seeded():
  """Every test starts from the same tinygrad RNG state, so weights and inputs are reproducible."""
  Tensor.manual_seed(0)
