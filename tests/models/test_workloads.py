"""Every workload builds at size "small", is one unrealized step, and realizes to finite numbers."""
import numpy as np
import pytest
from tinygrad import Tensor

from tinybounty.models.workloads import WORKLOADS


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_small_workload_realizes_finite(name):
  outs = WORKLOADS[name].build("small")
  assert outs and all(not t.uop.has_buffer_identity() for t in outs[:1]), "the first output must be unrealized work"
  before = [Tensor(t.uop.buf_uop).numpy() for t in outs[1:]] if name.endswith("train_step") else []  # the buffers the step assigns
  Tensor.realize(*outs)
  assert all(np.isfinite(t.numpy()).all() for t in outs)
  assert all(not np.array_equal(b, t.numpy()) for b, t in zip(before, outs[1:])), "the step must update every param and state tensor"


def test_bad_size_is_an_error():
  with pytest.raises(ValueError, match="size"): WORKLOADS["gpt2_fwd"].build("huge")
