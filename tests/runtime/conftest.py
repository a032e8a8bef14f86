import pytest
from tinygrad.helpers import Context

from tinybounty.runtime import cpugraph
from tinybounty.runtime.nvrtc import use_pip_nvrtc

use_pip_nvrtc()  # before any test module imports tinygrad's CUDA compiler

BACKENDS = {"clang": "CPU", "llvm": "CPU:LLVM"}


@pytest.fixture(params=list(BACKENDS))
def backend(request):
  """Run the test once with tinygrad's clang backend (DEV=CPU) and once with its LLVM backend (DEV=CPU:LLVM)."""
  with Context(DEV=BACKENDS[request.param]): yield request.param


@pytest.fixture(autouse=True)
def stock_after():
  """Every test leaves tinygrad stock: CPUGraph uninstalled."""
  yield
  cpugraph.uninstall()
