"""Every workload builds at size "small", is one unrealized step, and realizes to finite numbers."""
import numpy as np
import pytest
from tinygrad import Context, Tensor

from tinybounty.models.workloads import WORKLOADS


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_small_workload_realizes_finite(name):
  outs = WORKLOADS[name].build("small")
  assert outs and all(not t.uop.has_buffer_identity() for t in outs[:1]), "the first output must be unrealized work"
  before = [t.numpy().copy() for t in outs[1:]] if name.endswith("train_step") else []
  with Context(NOOPT=1): Tensor.realize(*outs)  # NOOPT: correctness only, and far less compile time on a 2-core CI box
  assert all(np.isfinite(t.numpy()).all() for t in outs)
  if before: assert any(not np.array_equal(b, t.numpy()) for b, t in zip(before, outs[1:])), "the optimizer step must update params"


def test_bad_size_is_an_error():
  with pytest.raises(ValueError, match="size"): WORKLOADS["gpt2_fwd"].build("huge")
