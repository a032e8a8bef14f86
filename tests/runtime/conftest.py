import importlib.util
import os

# Rendering CUDA kernels needs no GPU, only NVRTC and CUDA headers that match it: the `render` extra installs both as wheels
# (nvidia-cuda-nvrtc-cu12, nvidia-cuda-runtime-cu12). Point tinygrad at them before it reads the paths.
_spec = importlib.util.find_spec("nvidia")
for _root in (_spec.submodule_search_locations if _spec and _spec.submodule_search_locations else []):
  if os.path.exists(lib := os.path.join(_root, "cuda_nvrtc", "lib", "libnvrtc.so.12")): os.environ.setdefault("NVRTC_PATH", lib)
  if os.path.exists(os.path.join(inc := os.path.join(_root, "cuda_runtime"), "include", "cuda_fp8.h")): os.environ.setdefault("CUDA_PATH", inc)
