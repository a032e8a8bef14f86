"""ResNet v1.5 (torchvision layout: the stride sits on the 3x3 conv), depths 18/34/50/101/152."""
from tinygrad import Tensor, nn


class BasicBlock:
  expansion = 1
  def __init__(self, cin: int, width: int, stride: int = 1):
    self.conv1, self.bn1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False), nn.BatchNorm(width)
    self.conv2, self.bn2 = nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm(width)
    self.downsample = _shortcut(cin, width, stride)

  def __call__(self, x: Tensor) -> Tensor:
    out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
    return (out + x.sequential(self.downsample)).relu()


class Bottleneck:
  expansion = 4
  def __init__(self, cin: int, width: int, stride: int = 1):
    self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm(width)
    self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm(width)
    self.conv3, self.bn3 = nn.Conv2d(width, width*4, 1, bias=False), nn.BatchNorm(width*4)
    self.downsample = _shortcut(cin, width*4, stride)

  def __call__(self, x: Tensor) -> Tensor:
    out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu())).relu()
    return (self.bn3(self.conv3(out)) + x.sequential(self.downsample)).relu()


def _shortcut(cin: int, cout: int, stride: int) -> list:
  return [] if stride == 1 and cin == cout else [nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm(cout)]


BLOCKS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3]),
          101: (Bottleneck, [3, 4, 23, 3]), 152: (Bottleneck, [3, 8, 36, 3])}


class ResNet:
  """ImageNet ResNet: (N, 3, H, W) images -> (N, num_classes) logits. `width` scales the channel counts (64 is the real model)."""
  def __init__(self, depth: int, num_classes: int = 1000, width: int = 64):
    if depth not in BLOCKS: raise ValueError(f"ResNet depth must be one of {sorted(BLOCKS)}, got {depth}")
    block, counts = BLOCKS[depth]
    self.conv1, self.bn1 = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm(width)
    self.layers: list[list] = []
    cin = width
    for i, n in enumerate(counts):
      stage = []
      for j in range(n):
        stage.append(block(cin, width * 2**i, 2 if i > 0 and j == 0 else 1))
        cin = width * 2**i * block.expansion
      self.layers.append(stage)
    self.fc = nn.Linear(cin, num_classes)

  def __call__(self, x: Tensor) -> Tensor:
    x = self.bn1(self.conv1(x)).relu().pad((1, 1, 1, 1), value=float("-inf")).max_pool2d(3, 2)
    for stage in self.layers: x = x.sequential(stage)
    return self.fc(x.mean((2, 3)))


def resnet18(num_classes: int = 1000) -> ResNet: return ResNet(18, num_classes)
def resnet50(num_classes: int = 1000) -> ResNet: return ResNet(50, num_classes)
