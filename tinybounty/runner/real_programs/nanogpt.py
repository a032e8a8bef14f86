"""nanoGPT-style training: a small GPT (causal self-attention with a fused QKV projection, GELU MLP, tied embeddings),
AdamW, gradient accumulation over micro-batches and gradient clipping, as nanoGPT's train.py loops."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinybounty.runner.real_programs.harness import Program


class CausalSelfAttention(nn.Module):
  def __init__(self, dim: int, heads: int):
    super().__init__()
    self.c_attn, self.c_proj, self.heads = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    B, T, C = x.shape
    q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).tril().logical_not(), float("-inf")).softmax(-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
  def __init__(self, dim: int, heads: int):
    super().__init__()
    self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(dim), CausalSelfAttention(dim, heads), nn.LayerNorm(dim)
    self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
  def __init__(self, vocab: int = 64, block: int = 16, dim: int = 32, layers: int = 2, heads: int = 2):
    super().__init__()
    self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(block, dim)
    self.h, self.ln_f = nn.ModuleList(Block(dim, heads) for _ in range(layers)), nn.LayerNorm(dim)
    self.lm_head = nn.Linear(dim, vocab, bias=False)
    self.wte.weight = self.lm_head.weight  # weight tying
    for name, p in self.named_parameters():
      if name.endswith("c_proj.weight"): nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

  def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
    for b in self.h: x = b(x)
    logits = self.lm_head(self.ln_f(x))
    return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)


def _batch(micro: int = 2, n: int = 2, T: int = 16) -> dict:
  data = torch.randint(0, 64, (micro, n, T + 1))
  return {"micro": [{"idx": d[:, :-1].contiguous(), "targets": d[:, 1:].contiguous()} for d in data]}


def programs() -> dict[str, Program]:
  return {"nanogpt": Program("nanogpt", GPT, _batch, lambda m, b: m(b["idx"], b["targets"]),
                             lambda ps: torch.optim.AdamW(ps, lr=6e-3, betas=(0.9, 0.95), weight_decay=0.1), accumulate=2, clip=1.0)}
