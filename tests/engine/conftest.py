import pytest

import tinybounty.engine as engine


@pytest.fixture
def both():
  """Run a function under stock tinygrad and under our engine; returns (stock result, ours result), engine left as found."""
  def run(fn):
    with engine.enabled(False): stock = fn()
    with engine.enabled(True): ours = fn()
    return stock, ours
  return run
