import pytest

from tinybounty.validate import metadata


@pytest.fixture
def metadata_installed():
  metadata.install()
  yield
  metadata.uninstall()


@pytest.fixture
def two_cpus() -> tuple[str, str]:
  return ("CPU:0", "CPU:1")
