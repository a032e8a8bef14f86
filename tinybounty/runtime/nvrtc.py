"""Rendering CUDA kernels without a GPU: NVRTC and CUDA headers that match it, from the `render` extra's wheels."""
from __future__ import annotations

import importlib.util
import os


def use_pip_nvrtc() -> bool:
  """Point tinygrad at nvidia-cuda-nvrtc-cu12 and nvidia-cuda-runtime-cu12 (headers) where installed and nothing else is set.

  Call before tinygrad's CUDA compiler is imported (it reads CUDA_PATH then). True when NVRTC is available.
  """
  spec = importlib.util.find_spec("nvidia")
  for root in (spec.submodule_search_locations if spec and spec.submodule_search_locations else []):
    if os.path.exists(lib := os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.12")): os.environ.setdefault("NVRTC_PATH", lib)
    if os.path.exists(os.path.join(inc := os.path.join(root, "cuda_runtime"), "include", "cuda_fp8.h")): os.environ.setdefault("CUDA_PATH", inc)
  return bool(os.environ.get("NVRTC_PATH"))
