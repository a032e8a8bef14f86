import os

import pytest

os.environ.setdefault("DEV", "CPU")


def _has_cuda() -> bool:
  from tinybounty.hardware import nvidia_gpus
  return bool(nvidia_gpus())


def pytest_collection_modifyitems(config, items):
  if _has_cuda(): return
  skip = pytest.mark.skip(reason="needs an NVIDIA GPU (tinygrad DEV=CUDA)")
  for item in items:
    if "gpu" in item.keywords: item.add_marker(skip)
