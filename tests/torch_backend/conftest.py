import pytest
import torch

import tinybounty.torch_backend as tb


@pytest.fixture
def counter():
  """stats() from zero, and every read of a device buffer by tinygrad (clear() it after moving inputs to the device)."""
  from tinygrad.device import Buffer, Device
  reads, orig = [], Buffer.as_memoryview
  def spy(self, *args, **kwargs):
    if self.device.split(":")[0] == Device.DEFAULT.split(":")[0]: reads.append(self.size)  # not the host-side source of a copy in
    return orig(self, *args, **kwargs)
  Buffer.as_memoryview = spy
  tb.reset_stats()
  try:
    yield reads
  finally:
    Buffer.as_memoryview = orig


def tiny(x: torch.Tensor) -> torch.Tensor:
  return x.to("tiny")
