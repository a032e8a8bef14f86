"""Eager training and decode steps on the tiny device vs PyTorch CPU eager, in the same process run.

  PYTHONPATH=. DEV=CPU python bench/torch_step.py [--steps 20] [--only mlp,hlb,decode] [--no-capture]

Workloads (each timed per step after warm-up steps, median and min over `--steps`):
  mlp     10 x (Linear(32, 32) + ReLU), batch 8, AdamW, loss.item() every step (issue 15's step)
  hlb     an hlb-CIFAR10-style step scaled down: whitening conv, three conv groups (conv, max-pool, BatchNorm, GELU),
          amax pooling, label-smoothed cross entropy, SGD with nesterov, batch 32 of 32x32 images, float32
  decode  a GPT-2-small-shaped decode step: 12 heads of 64, a static KV cache of 128 positions written at a position
          tensor (gpt-fast's way), pre-LN blocks with GELU MLPs, next-token logits and argmax read back each step
          (--layers blocks, default 2, and --vocab, default 50257: the CPU's GEMMs, not dispatch, dominate larger ones)
PyTorch runs single-threaded (torch.set_num_threads(1)): tinygrad's CPU kernels are single-threaded too, and on this
shared 2-core machine PyTorch's second thread only waits on the other jobs. Each workload starts from the same weights
and data on both devices; the bench prints the largest difference between the two runs' per-step outputs.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import tinybounty.torch_backend as tb
from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.torch_backend import capture


def mlp_step(dev: str) -> Callable[[], float]:
  torch.manual_seed(0)
  model = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(32, 32), nn.ReLU())]).to(dev)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
  x, y = torch.randn(8, 32).to(dev), torch.randn(8, 32).to(dev)
  def step() -> float:
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss.item()
  return step


class ConvGroup(nn.Module):
  def __init__(self, cin: int, cout: int) -> None:
    super().__init__()
    self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.Conv2d(cout, cout, 3, padding=1, bias=False)
    self.norm1, self.norm2 = nn.BatchNorm2d(cout, momentum=0.4), nn.BatchNorm2d(cout, momentum=0.4)
    self.pool = nn.MaxPool2d(2)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.gelu(self.norm1(self.pool(self.conv1(x))))
    return F.gelu(self.norm2(self.conv2(x)))


class HlbNet(nn.Module):
  def __init__(self, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
    super().__init__()
    self.whiten = nn.Conv2d(3, 24, 2, bias=False)
    self.groups = nn.Sequential(ConvGroup(24, widths[0]), ConvGroup(widths[0], widths[1]), ConvGroup(widths[1], widths[2]))
    self.linear = nn.Linear(widths[2], 10, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = torch.amax(self.groups(F.gelu(self.whiten(x))), dim=(2, 3))
    return x @ (self.linear.weight / 9).T


def hlb_step(dev: str) -> Callable[[], float]:
  torch.manual_seed(0)
  net = HlbNet().to(dev)
  opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.85, nesterov=True, weight_decay=5e-4)
  images, labels = torch.randn(32, 3, 33, 33).to(dev), torch.randint(0, 10, (32,)).to(dev)
  def step() -> float:
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(images), labels, label_smoothing=0.2, reduction="none").sum()
    loss.backward()
    opt.step()
    return loss.item()
  return step


class Block(nn.Module):
  def __init__(self, dim: int, heads: int, cache: int) -> None:
    super().__init__()
    self.heads, self.ln1, self.ln2 = heads, nn.LayerNorm(dim), nn.LayerNorm(dim)
    self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
    self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
    self.register_buffer("k_cache", torch.zeros(1, heads, cache, dim // heads))
    self.register_buffer("v_cache", torch.zeros(1, heads, cache, dim // heads))

  def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    b, t, d = x.shape
    q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
    q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
    self.k_cache[:, :, pos] = k
    self.v_cache[:, :, pos] = v
    att = F.scaled_dot_product_attention(q, self.k_cache, self.v_cache, attn_mask=mask)
    x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
    return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Decoder(nn.Module):
  def __init__(self, layers: int, vocab: int, dim: int = 768, heads: int = 12, cache: int = 128) -> None:
    super().__init__()
    self.tok, self.pos_emb = nn.Embedding(vocab, dim), nn.Embedding(cache, dim)
    self.blocks = nn.ModuleList(Block(dim, heads, cache) for _ in range(layers))
    self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab, bias=False)
    self.register_buffer("causal", torch.tril(torch.ones(cache, cache, dtype=torch.bool)))

  def forward(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    x, mask = self.tok(token) + self.pos_emb(pos), self.causal[pos][None, None]
    for blk in self.blocks: x = blk(x, pos, mask)
    return self.head(self.ln(x))


def decode_step(dev: str, layers: int, vocab: int) -> Callable[[], float]:
  torch.manual_seed(0)
  model = Decoder(layers, vocab).to(dev).eval()
  token, pos = torch.tensor([[1]]).to(dev), [0]
  positions = [torch.tensor([p]).to(dev) for p in range(128)]
  def step() -> float:
    with torch.no_grad():
      logits = model(token, positions[pos[0] % 128])
      token.copy_(logits[:, -1].argmax(-1, keepdim=True))
    pos[0] += 1
    return float(logits[0, -1, :8].sum().item())
  return step


def run(make: Callable[[str], Callable[[], float]], steps: int, warmup: int) -> dict[str, tuple]:
  out = {}
  for dev in ("cpu", "tiny"):
    step = make(dev)
    vals = [step() for _ in range(warmup)]
    times = []
    for _ in range(steps):
      t0 = time.perf_counter()
      vals.append(step())
      times.append(time.perf_counter() - t0)
    out[dev] = (statistics.median(times) * 1e3, min(times) * 1e3, vals)
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--warmup", type=int, default=capture.WARMUP[0] + 8,
                  help="untimed steps first: the first steps learn, repeat past capture's warm-up (TINY_CAPTURE_WARMUP, "
                       "whose value plus 8 is the default), capture and compile")
  ap.add_argument("--only", default="mlp,hlb,decode")
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--vocab", type=int, default=50257)
  ap.add_argument("--no-capture", action="store_true", help="run the tiny device without step capture (TINY_CAPTURE=0)")
  a = ap.parse_args()
  torch.set_num_threads(1)
  capture.set_enabled(not a.no_capture)
  works = {"mlp": mlp_step, "hlb": hlb_step, "decode": lambda dev: decode_step(dev, a.layers, a.vocab)}
  print(f"machine: {machine()}  capture: {'off' if a.no_capture else 'on'}")
  for name in a.only.split(","):
    tb.reset_stats()
    r = run(works[name], a.steps, a.warmup)
    (cm, cmin, cv), (tm, tmin, tv) = r["cpu"], r["tiny"]
    diff = max(abs(x - y) for x, y in zip(cv, tv))
    s = tb.stats()
    print(f"{name:<7} cpu median {cm:8.2f} ms (min {cmin:.2f})  tiny median {tm:8.2f} ms (min {tmin:.2f})  ratio {tm / cm:6.2f}x  "
          f"max |tiny-cpu| per-step output {diff:.2e}  captured {s.get('captured', 0)} replays {s.get('replays', 0)} lowered {s.get('lowered', 0)}")
    cmd = (f"PYTHONPATH=. DEV=CPU python bench/torch_step.py --only {name} --steps {a.steps} --warmup {a.warmup}"
           + (" --no-capture" if a.no_capture else ""))
    print(format_row(f"torch_step_{name}", machine(), cmd, f"tiny {tm:.2f} ms per step (median of {a.steps}; {tm / cm:.2f}x)",
                     f"PyTorch CPU eager {cm:.2f} ms, 1 thread, same run"))


if __name__ == "__main__":
  main()
