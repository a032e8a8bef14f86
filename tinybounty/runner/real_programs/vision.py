"""Vision models written here after torchvision's definitions (ResNet BasicBlock/Bottleneck, MobileNetV2's inverted
residuals, a ViT), trained with SGD + momentum and BatchNorm in train mode, then evaluated in eval mode.

`width` scales every channel count (1.0 is torchvision's); the suite runs narrow versions on small images.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from tinybounty.runner.real_programs.harness import Program


def _bn_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
  return [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin: int, planes: int, stride: int = 1):
    super().__init__()
    self.conv1, self.bn1 = _bn_conv(cin, planes, 3, stride)
    self.conv2, self.bn2 = _bn_conv(planes, planes, 3)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = nn.Sequential(*_bn_conv(cin, planes, 1, stride)) if stride != 1 or cin != planes else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin: int, planes: int, stride: int = 1):
    super().__init__()
    self.conv1, self.bn1 = _bn_conv(cin, planes, 1)
    self.conv2, self.bn2 = _bn_conv(planes, planes, 3, stride)  # stride on the 3x3, as torchvision's V1.5
    self.conv3, self.bn3 = _bn_conv(planes, planes * 4, 1)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = nn.Sequential(*_bn_conv(cin, planes * 4, 1, stride)) if stride != 1 or cin != planes * 4 else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
  def __init__(self, block: type, layers: list[int], num_classes: int = 10, width: float = 1.0):
    super().__init__()
    c = [max(4, int(w * width)) for w in (64, 128, 256, 512)]
    self.conv1, self.bn1 = _bn_conv(3, c[0], 7, 2)
    self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
    cin, stages = c[0], []
    for i, (planes, n) in enumerate(zip(c, layers)):
      blocks = []
      for j in range(n):
        blocks.append(block(cin, planes, 2 if i > 0 and j == 0 else 1))
        cin = planes * block.expansion
      stages.append(nn.Sequential(*blocks))
    self.layer1, self.layer2, self.layer3, self.layer4 = stages
    self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(cin, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
  def __init__(self, cin: int, cout: int, stride: int, expand: int):
    super().__init__()
    hidden = cin * expand
    layers: list[nn.Module] = []
    if expand != 1: layers += [*_bn_conv(cin, hidden, 1), nn.ReLU6(inplace=True)]
    layers += [*_bn_conv(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True), *_bn_conv(hidden, cout, 1)]
    self.conv, self.use_res = nn.Sequential(*layers), stride == 1 and cin == cout

  def forward(self, x: torch.Tensor) -> torch.Tensor: return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
  # (expansion t, channels c, repeats n, stride s) as in the paper and torchvision
  SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

  def __init__(self, num_classes: int = 10, width: float = 1.0, depth: int = 7):
    super().__init__()
    ch = lambda c: max(4, int(c * width))
    cin, feats = ch(32), [*_bn_conv(3, ch(32), 3, 2), nn.ReLU6(inplace=True)]
    for t, c, n, s in self.SETTING[:depth]:
      for i in range(n):
        feats.append(InvertedResidual(cin, ch(c), s if i == 0 else 1, t))
        cin = ch(c)
    last = ch(1280)
    feats += [*_bn_conv(cin, last, 1), nn.ReLU6(inplace=True)]
    self.features = nn.Sequential(*feats)
    self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(last, num_classes))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class ViT(nn.Module):
  """Patch embedding by a strided conv, a class token, learned positions, pre-norm encoder blocks (nn.MultiheadAttention), a head."""
  def __init__(self, image: int = 32, patch: int = 8, dim: int = 32, depth: int = 2, heads: int = 2, mlp: int = 64, num_classes: int = 10):
    super().__init__()
    self.conv_proj = nn.Conv2d(3, dim, patch, patch)
    self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
    self.pos_embedding = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
    layer = lambda: nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    self.layers = nn.ModuleList(layer() for _ in range(depth))
    self.ln, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.conv_proj(x).flatten(2).transpose(1, 2)
    x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
    for layer in self.layers: x = layer(x)
    return self.head(self.ln(x)[:, 0])


def _sgd(params) -> torch.optim.Optimizer: return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


def _ce(model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
  out = model(batch["x"])
  return out, nn.functional.cross_entropy(out, batch["y"])


def _images(n: int = 4, size: int = 32) -> dict: return {"x": torch.randn(n, 3, size, size), "y": torch.randint(0, 10, (n,))}


def programs(size: int = 32) -> dict[str, Program]:
  """ResNet-18 / ResNet-50 (quarter / eighth width), MobileNetV2 (quarter width), a small ViT; batch 4 of 3 x size x size."""
  evaluate = lambda m, b: m(b["x"])
  def prog(name: str, build, train_mode: bool = True) -> Program:
    return Program(name, build, lambda: _images(size=size), _ce, _sgd, train_mode=train_mode, evaluate=evaluate)
  return {
    "resnet18": prog("resnet18", lambda: ResNet(BasicBlock, [2, 2, 2, 2], width=0.25)),
    "resnet18_full": Program("resnet18_full", lambda: ResNet(BasicBlock, [2, 2, 2, 2]), lambda: _images(size=64), _ce, _sgd, train_mode=True,
                             evaluate=evaluate),
    "resnet50": prog("resnet50", lambda: ResNet(Bottleneck, [3, 4, 6, 3], width=0.125)),
    "mobilenet_v2": prog("mobilenet_v2", lambda: MobileNetV2(width=0.25)),
    "vit_small": prog("vit_small", lambda: ViT()),
  }
