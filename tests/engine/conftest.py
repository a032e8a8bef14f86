import contextlib

import pytest

import tinybounty.engine as engine


@pytest.fixture(params=["native", "python"])
def kind(request) -> str:
  """Which of our engines a test runs: the C loop or the Python loop."""
  return request.param


@pytest.fixture
def ours(kind):
  """A context manager that installs our engine of this test's kind (and checks that kind is the one running)."""
  @contextlib.contextmanager
  def on():
    with engine.enabled(True, native_loop=kind == "native"):
      assert engine.engine_kind() == kind, engine.native_error()
      yield
  return on


@pytest.fixture
def both(ours):
  """Run a function under stock tinygrad and under our engine; returns (stock result, ours result), engine left as found."""
  def run(fn):
    with engine.enabled(False): stock = fn()
    with ours(): ours_ = fn()
    return stock, ours_
  return run
