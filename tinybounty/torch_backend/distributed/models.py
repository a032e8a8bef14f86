"""The small networks and the synthetic data the data-parallel runs train on (ResNet-style CNN, decoder transformer).

No batch norm: its statistics are per rank's batch, so a data-parallel run could not equal one process on the
concatenated batch; the CNN uses GroupNorm (per sample), the transformer LayerNorm. `SmallResNet(unused=True)` adds a
head the forward never calls, which DDP only accepts with `find_unused_parameters=True`.
"""
from __future__ import annotations

import torch
from torch import nn

IMAGE, CLASSES, VOCAB, CONTEXT = 8, 10, 32, 8


class Block(nn.Module):
  """conv-norm-relu-conv-norm plus the identity: a ResNet basic block."""
  def __init__(self, ch: int) -> None:
    super().__init__()
    self.conv1, self.norm1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.GroupNorm(2, ch)
    self.conv2, self.norm2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.GroupNorm(2, ch)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x + self.norm2(self.conv2(torch.relu(self.norm1(self.conv1(x))))))


class SmallResNet(nn.Module):
  """stem conv, two residual blocks with a stride-2 conv between them, global average pool, linear head."""
  def __init__(self, ch: int = 8, unused: bool = False) -> None:
    super().__init__()
    self.stem = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1, bias=False), nn.GroupNorm(2, ch), nn.ReLU())
    self.block1, self.down, self.block2 = Block(ch), nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), Block(2 * ch)
    self.head = nn.Linear(2 * ch, CLASSES)
    if unused: self.unused = nn.Linear(2 * ch, CLASSES)  # never called: DDP must be told (find_unused_parameters)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.block2(self.down(self.block1(self.stem(x))))
    return self.head(x.mean((2, 3)))


class TinyTransformer(nn.Module):
  """A one-layer causal decoder: token + position embeddings, pre-norm attention and MLP, tied-free head."""
  def __init__(self, dim: int = 16, heads: int = 2) -> None:
    super().__init__()
    self.tok, self.pos = nn.Embedding(VOCAB, dim), nn.Embedding(CONTEXT, dim)
    self.norm1, self.norm2, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
    self.qkv, self.proj, self.heads = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads
    self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
    self.head = nn.Linear(dim, VOCAB)

  def forward(self, idx: torch.Tensor) -> torch.Tensor:
    b, t = idx.shape
    x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
    q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
    mask = torch.ones(t, t, dtype=torch.bool, device=idx.device).tril()
    att = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf")).softmax(-1)
    x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, -1))
    x = x + self.mlp(self.norm2(x))
    return self.head(self.norm_out(x))


MODELS = {"cnn": SmallResNet, "transformer": TinyTransformer}


def make_model(name: str, seed: int = 0, unused: bool = False) -> nn.Module:
  """The named network with weights drawn on the CPU from `seed`: every rank and the reference start identical."""
  if name not in MODELS: raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
  torch.manual_seed(seed)
  return SmallResNet(unused=unused) if name == "cnn" else TinyTransformer()


def batch(name: str, step: int, size: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
  """Step `step`'s global batch of `size` samples (CPU tensors), the same in every process."""
  g = torch.Generator().manual_seed(seed * 100003 + step)
  if name == "cnn": return torch.randn(size, 3, IMAGE, IMAGE, generator=g), torch.randint(0, CLASSES, (size,), generator=g)
  tokens = torch.randint(0, VOCAB, (size, CONTEXT + 1), generator=g)
  return tokens[:, :-1], tokens[:, 1:]


def loss_fn(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
  return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def shard(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
  """This rank's contiguous share of a global batch; the world size must divide the batch (no silent padding or drop)."""
  if x.shape[0] % world: raise ValueError(f"global batch of {x.shape[0]} samples does not split over world size {world}: "
                                          f"choose a batch that is a multiple of {world}")
  n = x.shape[0] // world
  return x[rank * n:(rank + 1) * n]
