"""An MLP and a small CNN train 20 steps on tiny and on the CPU from identical weights and data: same losses, zero host round-trips."""
import copy

import pytest
import torch
from torch import nn

import tinybounty.torch_backend as tb


def mlp() -> nn.Module:
  return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def cnn() -> nn.Module:
  return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 10))


OPTIMIZERS = {
  "sgd_foreach": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3, foreach=True),
  "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, foreach=False),
  "adam_fused": lambda p: torch.optim.Adam(p, lr=1e-2, fused=True),
  "sgd_fused": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, fused=True),
}


def train(model: nn.Module, make_opt, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[torch.Tensor]:
  opt, losses = make_opt(model.parameters()), []
  for _ in range(steps):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    losses.append(loss.detach())
  return losses


@pytest.mark.parametrize("arch,opt", [("mlp", "adamw"), ("cnn", "sgd_foreach"), ("mlp", "adam_fused"), ("mlp", "sgd_fused")])
def test_training_matches_cpu_without_round_trips(arch, opt, counter):
  torch.manual_seed(0)
  model, shape, classes = (mlp(), (16, 8), 4) if arch == "mlp" else (cnn(), (8, 1, 8, 8), 10)
  x, y = torch.randn(*shape), torch.randint(0, classes, (shape[0],))
  ref = torch.stack(train(copy.deepcopy(model), OPTIMIZERS[opt], x, y, 20))
  tiny_model, tx, ty = copy.deepcopy(model).to("tiny"), x.to("tiny"), y.to("tiny")
  counter.clear()
  tb.reset_stats()
  losses = train(tiny_model, OPTIMIZERS[opt], tx, ty, 20)
  assert {k: tb.stats()[k] for k in ("d2h", "d2h_bytes", "size_syncs", "fallbacks")} == {"d2h": 0, "d2h_bytes": 0, "size_syncs": 0, "fallbacks": 0}
  assert not counter
  torch.testing.assert_close(torch.stack(losses).cpu(), ref, rtol=1e-4, atol=1e-5)
  for p, q in zip(tiny_model.state_dict().values(), model.state_dict().values()): assert p.device.type == "tiny" and p.shape == q.shape
