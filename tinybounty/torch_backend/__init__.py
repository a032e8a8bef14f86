"""The `tiny` PyTorch device: `import tinybounty.torch_backend`, then `x.to("tiny")` runs on tinygrad (DEV picks the device).

Importing registers the device (PyTorch's PrivateUse1 key renamed "tiny") with every kernel of the op table.
`stats()` counts host round-trips (see stats.py); `reset_stats()` zeroes them.
"""
from tinybounty.torch_backend.device import register
from tinybounty.torch_backend.stats import reset_stats, stats

register()

def save(obj: object, f: object) -> None:
  """torch.save through the CPU: every tiny tensor in `obj` (nested dicts/lists, state_dicts) is saved as a CPU tensor."""
  import torch
  from torch.utils._pytree import tree_map
  torch.save(tree_map(lambda v: v.cpu() if isinstance(v, torch.Tensor) and v.device.type == "tiny" else v, obj), f)


__all__ = ["stats", "reset_stats", "save"]
