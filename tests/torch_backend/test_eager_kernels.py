"""The eager device's kernel economy: O(n) compaction, one kernel for a loop of small writes, batched realization."""
import numpy as np
import pytest
import tinygrad.engine.realize as realize
import tinygrad.schedule as schedule
import torch
from tinygrad import Tensor

import tinybounty.torch_backend  # noqa: F401
from tinybounty.torch_backend import device
from tinybounty.torch_backend.compaction import compact, prefix_count


@pytest.mark.parametrize("n", [1, 255, 256, 257, 70_001])
def test_compaction_matches_numpy(n):
  rng = np.random.default_rng(n)
  mask, x = rng.random(n) < 0.3, rng.standard_normal(n).astype(np.float32)
  np.testing.assert_array_equal(prefix_count(Tensor(mask.astype(np.int32))).numpy(), np.cumsum(mask))
  if (count := int(mask.sum())) == 0: return
  np.testing.assert_array_equal(compact(Tensor(mask), count).numpy(), np.nonzero(mask)[0])
  np.testing.assert_array_equal(compact(Tensor(mask), count, Tensor(x)).numpy(), x[mask])


def test_a_loop_of_small_writes_compiles_no_kernel_per_offset(capture_off):
  w, ref = torch.zeros(8, 8, 3, 3, device="tiny"), torch.zeros(8, 8, 3, 3)
  w[0, 1, 0, 0] = 1.5  # warm: compiles what a point write needs
  device.flush()
  before = len(realize.to_program_cache)
  for i in range(8): w[i, (i + 2) % 8, 1, 2] = ref[i, (i + 2) % 8, 1, 2] = 1.5  # 8 offsets never written before
  device.flush()
  ref[0, 1, 0, 0] = 1.5
  assert len(realize.to_program_cache) == before
  assert torch.equal(w.cpu(), ref)


def test_writes_are_realized_in_batches_and_flushed_by_an_optimizer_step():
  device.flush()
  p = torch.zeros(4, device="tiny", requires_grad=True)
  x = torch.zeros(6, device="tiny")
  x[1:3] = 5
  assert device._pending and x.cpu().tolist() == [0, 5, 5, 0, 0, 0]  # a pending write is read like a realized one
  opt = torch.optim.SGD([p], lr=0.5)
  p.sum().backward(); opt.step()
  assert not device._pending and p.detach().cpu().tolist() == [-0.5] * 4
  for i in range(device.FLUSH_AT + 1): x[i % 6] = i  # more writes than a batch: flushed on the way
  assert len(device._pending) < device.FLUSH_AT


def test_a_loop_of_new_values_compiles_no_kernel_per_value(capture_off):
  x, ref = torch.zeros(4, 5, device="tiny"), torch.zeros(4, 5)
  x[0, 0] = 0.25  # warm
  device.flush()
  before = len(realize.to_program_cache)
  for i in range(8): x[i % 4, i % 5] = ref[i % 4, i % 5] = 0.5 + i / 3  # 8 values never written before
  device.flush()
  ref[0, 0] = 0.25 if ref[0, 0] == 0 else ref[0, 0]
  assert len(realize.to_program_cache) == before
  assert torch.equal(x.cpu(), ref)


def test_a_loop_over_slices_of_a_permutation_compiles_and_schedules_once():
  """A training loop's batches, perm[i*bs:(i+1)*bs]: the slice's offset is a kernel argument, not a new constant."""
  torch.manual_seed(0)
  perm, data = torch.randperm(640), torch.randn(640, 3)
  tiny_perm, tiny_data = perm.to("tiny"), data.to("tiny")
  acc, ref = torch.zeros(3, device="tiny"), torch.zeros(3)
  for i in range(6):
    if i == 2: before = (len(realize.to_program_cache), len(schedule.schedule_cache))
    acc.add_(tiny_data.index_select(0, tiny_perm[i * 64:(i + 1) * 64]).sum(0))
    device.flush()
    ref.add_(data.index_select(0, perm[i * 64:(i + 1) * 64]).sum(0))
  assert (len(realize.to_program_cache), len(schedule.schedule_cache)) == before
  torch.testing.assert_close(acc.cpu(), ref)


def test_an_ema_update_with_a_new_decay_each_step_compiles_nothing_new(capture_off):
  ema, ref = torch.ones(16, device="tiny"), torch.ones(16)
  param = torch.arange(16.0)
  def update(e, p, decay): e.mul_(decay).add_(p.mul(1.0 - decay))
  for decay in (0.7, 0.8):  # warm: the first update also realizes the ones
    update(ema, param.to("tiny"), decay)
    update(ref, param, decay)
    device.flush()
  before = (len(realize.to_program_cache), len(schedule.schedule_cache))
  for step in range(4):
    update(ema, param.to("tiny"), 0.9 + step / 50)
    update(ref, param, 0.9 + step / 50)
    device.flush()
  assert (len(realize.to_program_cache), len(schedule.schedule_cache)) == before
  torch.testing.assert_close(ema.cpu(), ref)


def test_device_scalars_keep_signed_zeros_and_nans_apart():
  x = torch.ones(4, device="tiny")
  assert torch.equal((x * -0.0).cpu().signbit(), torch.ones(4, dtype=torch.bool))
  assert torch.equal((x * 0.0).cpu().signbit(), torch.zeros(4, dtype=torch.bool))
  assert (x * float("nan")).cpu().isnan().all() and torch.equal((x / 4.0).cpu(), torch.full((4,), 0.25))
