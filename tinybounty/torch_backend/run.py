"""`python -m tinybounty.torch_backend.run --device tiny path/to/main.py`: the script runner (tinybounty.runner) from the
torch backend's package, so the tiny device is registered. A CUDA run belongs in `python -m tinybounty.runner`, which
leaves PyTorch's accelerator alone (see tinybounty/runner/__init__.py)."""
from tinybounty.runner.run import main

if __name__ == "__main__": raise SystemExit(main())
