"""The `tiny` PyTorch device: `import tinybounty.torch_backend`, then `x.to("tiny")` runs on tinygrad (DEV picks the device).

Importing registers the device (PyTorch's PrivateUse1 key renamed "tiny") with every kernel of the op table.
`torch.save` / `torch.load` of tiny tensors go through the CPU (serialization.py).
`stats()` counts host round-trips (see stats.py); `reset_stats()` zeroes them.
"""
from tinybounty.torch_backend.device import register
from tinybounty.torch_backend.stats import reset_stats, stats

register()

__all__ = ["stats", "reset_stats"]
