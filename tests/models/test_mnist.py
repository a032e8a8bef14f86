"""BeautifulMNIST against the same network in PyTorch with the weights copied in (eval mode)."""
import numpy as np
import torch
from tinygrad import Tensor
from tinygrad.nn.state import get_state_dict

from tinybounty.models.mnist import BeautifulMNIST


def torch_mnist() -> torch.nn.Sequential:
  nn = torch.nn
  return nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.Conv2d(32, 32, 5), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
                       nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(576, 10))


def test_forward_matches_torch():
  model, ref = BeautifulMNIST(), torch_mnist().eval()
  for bn in (model.layers[4], model.layers[10]):  # non-trivial running statistics, so BN is really exercised
    bn.running_mean.assign(Tensor.randn(*bn.running_mean.shape)); bn.running_var.assign(Tensor.rand(*bn.running_var.shape) + 0.5)
  ours = {k.removeprefix("layers."): v.numpy() for k, v in get_state_dict(model).items()}
  ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
  x = Tensor.randn(4, 1, 28, 28).realize()
  np.testing.assert_allclose(model(x).numpy(), ref(torch.from_numpy(x.numpy())).detach().numpy(), atol=1e-4, rtol=1e-4)
