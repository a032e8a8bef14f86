import pytest
import torch
from tinygrad import Tensor

import tinybounty.torch_backend as tb

READS = ("numpy", "item", "tolist", "data", "_data")


@pytest.fixture
def counter():
  """stats() from zero, plus every call of a tinygrad API that reads a tensor back to the host (numpy, item, tolist,
  data), whoever makes it: tests compare its length with stats() so nothing reads behind the counter's back."""
  reads, saved, depth = [], {name: getattr(Tensor, name) for name in READS}, [0]
  def spy(name):
    def read(self, *args, **kwargs):
      if depth[0] == 0: reads.append((name, tuple(self.shape)))
      depth[0] += 1
      try:
        return saved[name](self, *args, **kwargs)
      finally:
        depth[0] -= 1
    return read
  for name in READS: setattr(Tensor, name, spy(name))
  tb.reset_stats()
  try:
    yield reads
  finally:
    for name, fn in saved.items(): setattr(Tensor, name, fn)


def tiny(x: torch.Tensor) -> torch.Tensor:
  return x.to("tiny")


@pytest.fixture
def capture_off():
  """Tests of the eager path itself (its schedules, its kernel cache) run with step capture off, whatever the default."""
  from tinybounty.torch_backend import capture
  was = capture.enabled()
  capture.set_enabled(False)
  yield
  capture.set_enabled(was)
