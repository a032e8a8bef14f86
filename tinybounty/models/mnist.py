"""tinygrad's beautiful_mnist convnet: two conv-conv-BN-pool stages and a linear head (10 classes, 28x28 inputs)."""
from tinygrad import Tensor, nn


class BeautifulMNIST:
  """conv5x5(1->32) relu, conv5x5(32->32) relu, BN, maxpool2, conv3x3(32->64) relu, conv3x3(64->64) relu, BN, maxpool2, linear(576->10)."""
  def __init__(self):
    self.layers = [nn.Conv2d(1, 32, 5), Tensor.relu, nn.Conv2d(32, 32, 5), Tensor.relu, nn.BatchNorm(32), Tensor.max_pool2d,
                   nn.Conv2d(32, 64, 3), Tensor.relu, nn.Conv2d(64, 64, 3), Tensor.relu, nn.BatchNorm(64), Tensor.max_pool2d,
                   lambda x: x.flatten(1), nn.Linear(576, 10)]

  def __call__(self, x: Tensor) -> Tensor:
    """(N, 1, 28, 28) images -> (N, 10) logits."""
    return x.sequential(self.layers)
