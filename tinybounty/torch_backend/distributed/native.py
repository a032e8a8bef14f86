"""tinygrad-native data parallel (no PyTorch model): a tinygrad MLP trained three ways on the same global batches.

- `train(devices=None)`: one device, the whole global batch (the reference).
- `train(devices=("CPU:0", "CPU:1"))`: one process, the batch split over several tinygrad devices with `Tensor.shard`
  (weights replicated); tinygrad itself reduces the gradients across devices (upstream's multi-device way).
- `python -m tinybounty.torch_backend.distributed.native` under torchrun: one tinygrad device per process, each rank
  computes gradients of its share, and the gradients are averaged through the torch.distributed process group (the
  tiny backend, over gloo), then every rank takes the same SGD step. Rank 0 writes the weights to --out.
"""
from __future__ import annotations

import argparse

import numpy as np
from tinygrad import Tensor, nn
from tinygrad.helpers import Context

from tinybounty.torch_backend.distributed.models import batch

SIZES = (3 * 8 * 8, 32, 10)


def init(seed: int = 0) -> list[Tensor]:
  rng = np.random.default_rng(seed)
  out = []
  for a, b in zip(SIZES[:-1], SIZES[1:]):
    out += [Tensor((rng.uniform(-1, 1, (a, b)) / np.sqrt(a)).astype(np.float32)), Tensor(np.zeros(b, np.float32))]
  return [p.realize() for p in out]


def loss(params: list[Tensor], x: Tensor, y: Tensor) -> Tensor:
  h = x.reshape(x.shape[0], -1)
  for i in range(0, len(params), 2):
    h = h @ params[i] + params[i + 1]
    if i + 2 < len(params): h = h.relu()
  return h.sparse_categorical_crossentropy(y)


def _data(step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  x, y = batch("cnn", step, size)
  return x.numpy(), y.numpy().astype(np.int32)


def train(steps: int, size: int, devices: tuple[str, ...] | None = None, lr: float = 0.05) -> list[np.ndarray]:
  """The weights after `steps` SGD steps on the global batches, on one device or sharded over `devices`."""
  params = init()
  if devices: params = [p.shard(devices).realize() for p in params]
  for p in params: p.requires_grad = True
  opt = nn.optim.SGD(params, lr=lr, momentum=0.9)
  with Context(TRAINING=1):
    for step in range(steps):
      xn, yn = _data(step, size)
      x, y = Tensor(xn), Tensor(yn)
      if devices: x, y = x.shard(devices, axis=0), y.shard(devices, axis=0)
      opt.zero_grad()
      loss(params, x, y).backward()
      opt.step()
  return [p.numpy() for p in params]


def train_rank(steps: int, size: int, lr: float = 0.05) -> list[np.ndarray]:
  """This rank's share of each global batch; gradients averaged with dist.all_reduce(AVG) on the tiny process group."""
  import torch
  import torch.distributed as dist

  from tinybounty.torch_backend.distributed.models import shard
  rank, world = dist.get_rank(), dist.get_world_size()
  params = init()
  for p in params: p.requires_grad = True
  opt = nn.optim.SGD(params, lr=lr, momentum=0.9)
  with Context(TRAINING=1):
    for step in range(steps):
      xn, yn = _data(step, size)
      x, y = shard(torch.from_numpy(xn), rank, world).numpy(), shard(torch.from_numpy(yn), rank, world).numpy()
      opt.zero_grad()
      loss(params, Tensor(x), Tensor(y)).backward()
      grads = [torch.from_numpy(p.grad.numpy()) for p in params]
      works = [dist.all_reduce(g, op=dist.ReduceOp.AVG, async_op=True) for g in grads]
      for w in works: w.wait()
      for p, g in zip(params, grads): p.grad = Tensor(g.numpy(), device=p.device)
      opt.step()
  return [p.numpy() for p in params]


if __name__ == "__main__":
  import torch
  import torch.distributed as dist

  import tinybounty.torch_backend.distributed  # noqa: F401  (the tiny process-group backend)
  from tinybounty.torch_backend.distributed import checkpoint
  ap = argparse.ArgumentParser()
  ap.add_argument("--steps", type=int, default=3)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--out", default=None)
  a = ap.parse_args()
  dist.init_process_group("tiny")
  weights = train_rank(a.steps, a.batch)
  if dist.get_rank() == 0 and a.out: checkpoint.save([torch.from_numpy(w) for w in weights], a.out)
  dist.destroy_process_group()
