"""tinygrad-native data parallel (no PyTorch model) equals one device on the concatenated batch: Tensor.shard over two
tinygrad devices in one process, and two processes whose gradients are averaged through the tiny process group."""
import numpy as np
import pytest
import torch

from tinybounty.torch_backend.distributed import native
from tinybounty.torch_backend.distributed.launch import torchrun

STEPS, BATCH = 3, 8


@pytest.fixture(scope="module")
def reference():
  return native.train(STEPS, BATCH)


def test_tensor_shard_over_two_devices_in_one_process(reference):
  from tinygrad import Device
  sharded = native.train(STEPS, BATCH, (f"{Device.DEFAULT}:0", f"{Device.DEFAULT}:1"))
  assert max(np.abs(a - b).max() for a, b in zip(sharded, reference)) <= 1e-5


def test_two_processes_all_reduce_gradients_through_the_process_group(reference, tmp_path):
  out = str(tmp_path / "native.pt")
  run = torchrun("tinybounty.torch_backend.distributed.native", 2, ["--steps", str(STEPS), "--batch", str(BATCH), "--out", out], timeout=600)
  assert run.returncode == 0, run.output[-3000:]
  got = torch.load(out)
  assert max(np.abs(g.numpy() - r).max() for g, r in zip(got, reference)) <= 1e-5
