from tinybounty.runtime.nvrtc import use_pip_nvrtc

use_pip_nvrtc()  # before any test module imports tinygrad's CUDA compiler
