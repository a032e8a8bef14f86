"""torch.distributed on the tiny device: `import tinybounty.torch_backend.distributed` registers the "tiny" backend.

```python
import torch.distributed as dist, tinybounty.torch_backend.distributed
dist.init_process_group("tiny")                 # or "cpu:gloo,tiny:tiny"; torchrun sets RANK, WORLD_SIZE, MASTER_ADDR ...
dist.all_reduce(torch.ones(4, device="tiny"))   # gloo carries the bytes, staged through the host (counted in stats())
```

The process group (process_group.py) serves tiny and CPU tensors; DDP and FSDP run on it unchanged. See
docs/distributed.md.
"""
import functools

import torch
import torch.distributed as dist

import tinybounty.torch_backend  # noqa: F401  (registers the tiny device)
from tinybounty.torch_backend.distributed import fsdp_storage, streams
from tinybounty.torch_backend.distributed.process_group import TinyProcessGroup, create


@functools.cache
def register() -> None:
  """Register the "tiny" torch.distributed backend for the tiny and CPU devices. Idempotent."""
  if "TINY" not in dist.Backend._plugins: dist.Backend.register_backend("tiny", create, devices=["cpu", "tiny"])
  streams.install(torch.tiny)  # FSDP asks the device module for streams and events
  fsdp_storage.install()  # and frees parameter memory by resizing storages


register()

__all__ = ["register", "TinyProcessGroup"]
