"""Tied parameters (GPT's shared embedding / output weight) stay one Parameter through .to("tiny") and back, so the
tied weight's gradient is the sum of both uses, as on the CPU (tying.py; PyTorch alone makes one Parameter per module)."""
import torch

import tinybounty.torch_backend  # noqa: F401
from tinybounty.torch_backend import tying


class Tied(torch.nn.Module):
  def __init__(self):
    super().__init__()
    self.emb, self.head = torch.nn.Embedding(8, 4), torch.nn.Linear(4, 8, bias=False)
    self.head.weight = self.emb.weight

  def forward(self, idx):
    return torch.nn.functional.cross_entropy(self.head(self.emb(idx)).view(-1, 8), idx.view(-1))


def _grad(model, dev):
  idx = torch.tensor([[1, 2, 3], [4, 1, 0]], device=dev)
  model(idx).backward()
  return model.emb.weight.grad.cpu()


def test_tie_survives_the_move_and_its_gradient_sums_both_uses():
  torch.manual_seed(0)
  ref = Tied()
  model = Tied()
  model.load_state_dict(ref.state_dict())
  model.to("tiny")
  assert model.head.weight is model.emb.weight and len(list(model.parameters())) == 1
  torch.testing.assert_close(_grad(model, "tiny"), _grad(ref, "cpu"))
  model.to("cpu")
  assert model.head.weight is model.emb.weight


def test_uninstall_gives_pytorchs_untying_back():
  tying.uninstall()
  try:
    model = Tied().to("tiny")
    assert model.head.weight is not model.emb.weight  # what PyTorch alone does for a device without shallow copies
  finally:
    tying.install()
  assert Tied().to("tiny").head.weight is not None and tying.installed()
