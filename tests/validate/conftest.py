import pytest

from tinybounty.validate import metadata


@pytest.fixture
def metadata_installed():
  # UOps are hash-consed: a graph identical to one an earlier test built (a constant's pad/reshape chain, say) is the
  # same UOp and keeps that test's op name. Each test starts from its own tensors' metadata only.
  from tinygrad.uop.ops import all_metadata
  all_metadata.clear()
  metadata.install()
  yield
  metadata.uninstall()


@pytest.fixture
def two_cpus() -> tuple[str, str]:
  return ("CPU:0", "CPU:1")
