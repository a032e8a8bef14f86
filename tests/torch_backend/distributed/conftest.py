import pytest


@pytest.fixture(scope="package", autouse=True)
def fast_engine_in_launched_processes():
  """Every rank and reference these tests launch lowers its kernels with tinybounty.engine (TINYBOUNTY_ENGINE=1; its
  kernels are stock's byte for byte, tests/engine): lowering is most of a cold launch on the 2-core CI machine."""
  mp = pytest.MonkeyPatch()
  mp.setenv("TINYBOUNTY_ENGINE", "1")
  yield
  mp.undo()
