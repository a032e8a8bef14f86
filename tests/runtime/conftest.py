import os

import pytest

NVRTC = "/work/main/.venv/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"


@pytest.fixture(scope="session")
def nvrtc_path() -> str:
  """libnvrtc for rendering CUDA kernels on a machine without a GPU (the `render` extra installs it)."""
  path = os.environ.get("NVRTC_PATH") or next((p for p in _nvrtc_candidates() if os.path.exists(p)), None)
  if path is None: pytest.skip("libnvrtc (pip extra `render`: nvidia-cuda-nvrtc-cu12) is not installed")
  return path


def _nvrtc_candidates() -> list[str]:
  import importlib.util
  spec = importlib.util.find_spec("nvidia")
  roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
  return [os.path.join(r, "cuda_nvrtc", "lib", "libnvrtc.so.12") for r in roots] + [NVRTC]
