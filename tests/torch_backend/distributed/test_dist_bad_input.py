"""Bad input to the tiny process group and the data-parallel runs: clear errors, never wrong numbers or a hang."""
import pytest
import torch
import torch.distributed as dist

import tinybounty.torch_backend.distributed  # noqa: F401
from tinybounty.torch_backend.distributed.launch import torchrun
from tinybounty.torch_backend.distributed.models import shard


def test_world_size_that_does_not_divide_the_batch():
  x = torch.arange(8)
  assert torch.equal(torch.cat([shard(x, r, 4) for r in range(4)]), x)
  with pytest.raises(ValueError, match="global batch of 8 samples does not split over world size 3"):
    shard(x, 0, 3)


@pytest.fixture
def one_rank_group():
  dist.init_process_group("tiny", store=dist.HashStore(), rank=0, world_size=1)
  yield
  dist.destroy_process_group()


def test_tensor_on_a_device_the_group_cannot_move(one_rank_group):
  with pytest.raises(ValueError, match=r"all_reduce tensor 0 is on meta; this process group moves tensors on 'tiny'"):
    dist.all_reduce(torch.ones(3, device="meta"))
  with pytest.raises(ValueError, match="all_gather_into_tensor output has 5 elements, needs world size 1 x input's 3"):
    dist.all_gather_into_tensor(torch.empty(5, device="tiny"), torch.ones(3, device="tiny"))
  with pytest.raises(ValueError, match="reduce op"):
    dist.all_reduce(torch.ones(3, device="tiny"), op=dist._make_nccl_premul_sum(2.0))
  x = torch.ones(3, device="tiny")
  dist.all_reduce(x)  # a world of one: the value itself
  assert torch.equal(x.cpu(), torch.ones(3))


def test_mismatched_shapes_across_ranks_raise_on_every_rank():
  run = torchrun("tinybounty.torch_backend.distributed.selftest", 2, ["--mismatch"], timeout=300)
  assert run.returncode == 0, run.output[-3000:]
  for r in (0, 1):
    assert f"rank {r}: raised: tiny process group: ranks disagree" in run.output, run.output[-3000:]
  assert "rank 0: allreduce(dtype=torch.float32, shape=(2,), tensors=1); rank 1: allreduce(dtype=torch.float32, shape=(3,)" in run.output
