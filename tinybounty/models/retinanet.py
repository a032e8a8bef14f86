"""RetinaNet (MLPerf's detector): ResNeXt50-32x4d + FPN (P3-P7) + classification and box heads, in tinygrad.

Attribute paths follow torchvision's `retinanet_resnet50_fpn` (backbone.body.layer1.0.conv1.weight,
backbone.fpn.inner_blocks.0.0.weight, head.classification_head.cls_logits.weight, ...), so one state dict fits this
model and the PyTorch reference. `RetinaNetConfig.mlperf()` is MLPerf's model; smaller configs shrink widths, depths and
the image for CPU runs. Outputs are per anchor, location-major with the 9 anchors of a location innermost, which is the
order `tinybounty.mlperf.retinanet_boxes.anchors` lays them out in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tinygrad import Tensor, nn


@dataclass(frozen=True)
class RetinaNetConfig:
  num_classes: int = 264           # MLPerf's OpenImages subset (COCO: 91)
  image_size: int = 800
  stem: int = 64                   # channels of the stem; stage i outputs stem * 4 * 2**i
  groups: int = 32                 # ResNeXt cardinality ...
  group_width: int = 4             # ... and width per group in stage 0 (32x4d)
  blocks: tuple[int, ...] = (3, 4, 6, 3)
  fpn_channels: int = 256
  head_convs: int = 4
  norm: str = "frozen"             # "frozen": torchvision's FrozenBatchNorm2d (pretrained backbones); "batch": trained BatchNorm
  trainable_layers: int = 3        # backbone stages trained, counted from layer4 (MLPerf: 3; 5 trains the stem too)
  anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)

  @staticmethod
  def mlperf(num_classes: int = 264) -> RetinaNetConfig: return RetinaNetConfig(num_classes=num_classes)

  @staticmethod
  def small(num_classes: int = 3, image_size: int = 128) -> RetinaNetConfig:
    """A CPU-sized RetinaNet: full ResNeXt50 depth, 1/4 of the widths, trained BatchNorm (there is no pretrained backbone here)."""
    return RetinaNetConfig(num_classes, image_size, stem=16, groups=8, group_width=4, fpn_channels=64, norm="batch", trainable_layers=5)

  @staticmethod
  def tiny(num_classes: int = 3, image_size: int = 64, norm: str = "frozen") -> RetinaNetConfig:
    """One block per stage and narrow heads: the reference-match config of the tests and check 13."""
    return RetinaNetConfig(num_classes, image_size, stem=8, groups=2, group_width=4, blocks=(1, 1, 1, 1), fpn_channels=16,
                           head_convs=2, norm=norm, trainable_layers=5 if norm == "batch" else 3)

  def with_(self, **kw) -> RetinaNetConfig: return replace(self, **kw)

  @property
  def levels(self) -> int: return len(self.anchor_sizes)


class FrozenBatchNorm:
  """BatchNorm with fixed statistics and affine parameters (torchvision's FrozenBatchNorm2d): never trained."""
  def __init__(self, n: int, eps: float = 1e-5):
    self.weight, self.bias, self.running_mean, self.running_var = Tensor.ones(n), Tensor.zeros(n), Tensor.zeros(n), Tensor.ones(n)
    for t in (self.weight, self.bias, self.running_mean, self.running_var): t.is_param_(False)
    self.eps = eps

  def __call__(self, x: Tensor) -> Tensor:
    scale = self.weight * (self.running_var + self.eps).rsqrt()
    shift = self.bias - self.running_mean * scale  # folded in float32, applied in the input's dtype
    return x * scale.cast(x.dtype).reshape(1, -1, 1, 1) + shift.cast(x.dtype).reshape(1, -1, 1, 1)


class Conv2d(nn.Conv2d):
  """nn.Conv2d in its input's dtype: float32 weights are cast where they are used (mixed precision); float32 input unchanged."""
  def __call__(self, x: Tensor) -> Tensor:
    return x.conv2d(self.weight.cast(x.dtype), None if self.bias is None else self.bias.cast(x.dtype), self.groups, self.stride,
                    self.dilation, self.padding)


class BatchNorm(nn.BatchNorm):
  """nn.BatchNorm whose statistics are taken in float32 whatever the input's dtype, the output cast back to it."""
  def __call__(self, x: Tensor) -> Tensor: return super().__call__(x.float()).cast(x.dtype)


def _norm(cfg: RetinaNetConfig, n: int):
  if cfg.norm == "frozen": return FrozenBatchNorm(n)
  if cfg.norm == "batch": return BatchNorm(n)
  raise ValueError(f"norm must be 'frozen' or 'batch', not {cfg.norm!r}")


class Bottleneck:
  """ResNeXt bottleneck (torchvision layout: stride and groups on the 3x3 conv)."""
  def __init__(self, cfg: RetinaNetConfig, cin: int, width: int, cout: int, stride: int):
    self.conv1, self.bn1 = Conv2d(cin, width, 1, bias=False), _norm(cfg, width)
    self.conv2, self.bn2 = Conv2d(width, width, 3, stride, 1, groups=cfg.groups, bias=False), _norm(cfg, width)
    self.conv3, self.bn3 = Conv2d(width, cout, 1, bias=False), _norm(cfg, cout)
    self.downsample = [] if stride == 1 and cin == cout else [Conv2d(cin, cout, 1, stride, bias=False), _norm(cfg, cout)]

  def __call__(self, x: Tensor) -> Tensor:
    out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu())).relu()
    return (self.bn3(self.conv3(out)) + x.sequential(self.downsample)).relu()


class Body:
  """The ResNeXt trunk; returns layer2..layer4's outputs (C3, C4, C5)."""
  def __init__(self, cfg: RetinaNetConfig):
    self.conv1, self.bn1 = Conv2d(3, cfg.stem, 7, 2, 3, bias=False), _norm(cfg, cfg.stem)
    cin = cfg.stem
    for i, n in enumerate(cfg.blocks):
      width, cout = cfg.groups * cfg.group_width * 2**i, cfg.stem * 4 * 2**i
      setattr(self, f"layer{i+1}", [Bottleneck(cfg, cin if j == 0 else cout, width, cout, 2 if i > 0 and j == 0 else 1) for j in range(n)])
      cin = cout
    self.out_channels = [cfg.stem * 4 * 2**i for i in (1, 2, 3)]

  def __call__(self, x: Tensor) -> list[Tensor]:
    x = self.bn1(self.conv1(x)).relu().pad((1, 1, 1, 1), value=float("-inf")).max_pool2d(3, 2)
    feats = []
    for i in range(4):
      x = x.sequential(getattr(self, f"layer{i+1}"))
      if i > 0: feats.append(x)
    return feats


class FPN:
  """Top-down feature pyramid over C3-C5 plus P6 and P7 from P5 (torchvision's LastLevelP6P7(256, 256), MLPerf's choice)."""
  def __init__(self, in_channels: list[int], ch: int, levels: int):
    self.inner_blocks = [[Conv2d(c, ch, 1)] for c in in_channels]
    self.layer_blocks = [[Conv2d(ch, ch, 3, padding=1)] for _ in in_channels]
    if levels != len(in_channels) + 2: raise ValueError(f"RetinaNet's FPN has {len(in_channels) + 2} levels (P3-P7), not {levels}")
    self.extra_blocks = _P6P7(ch)
    for conv in [b[0] for b in self.inner_blocks + self.layer_blocks] + [self.extra_blocks.p6, self.extra_blocks.p7]:
      _kaiming_uniform_a1(conv)

  def __call__(self, feats: list[Tensor]) -> list[Tensor]:
    last = self.inner_blocks[-1][0](feats[-1])
    outs = [self.layer_blocks[-1][0](last)]
    for i in range(len(feats) - 2, -1, -1):
      lateral = self.inner_blocks[i][0](feats[i])
      n, c, h, w = last.shape  # nearest 2x upsampling (F.interpolate(mode="nearest"); sizes are exact, the image is a multiple of 32)
      last = lateral + last.reshape(n, c, h, 1, w, 1).expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)
      outs.insert(0, self.layer_blocks[i][0](last))
    p6 = self.extra_blocks.p6(outs[-1])
    return outs + [p6, self.extra_blocks.p7(p6.relu())]


class _P6P7:
  def __init__(self, ch: int): self.p6, self.p7 = Conv2d(ch, ch, 3, 2, 1), Conv2d(ch, ch, 3, 2, 1)


class Backbone:
  def __init__(self, cfg: RetinaNetConfig):
    self.body = Body(cfg)
    self.fpn = FPN(self.body.out_channels, cfg.fpn_channels, cfg.levels)


class _Head:
  """A tower of 3x3 convs + ReLU shared by all levels, then the subclass's final conv to `per_anchor` outputs per anchor."""
  def __init__(self, ch: int, convs: int):
    self.conv = [[Conv2d(ch, ch, 3, padding=1)] for _ in range(convs)]
    for (c,) in self.conv: _normal(c, 0.01)

  def _apply(self, feats: list[Tensor], final: Conv2d, per_anchor: int) -> Tensor:
    outs = []
    for f in feats:
      for (c,) in self.conv: f = c(f).relu()
      f = final(f)
      n, _, h, w = f.shape
      outs.append(f.reshape(n, -1, per_anchor, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, per_anchor))
    return outs[0].cat(*outs[1:], dim=1)


class ClassificationHead(_Head):
  """Class logits (N, A, num_classes); the final bias starts at the focal-loss prior -log((1 - 0.01) / 0.01)."""
  def __init__(self, ch: int, convs: int, anchors: int, num_classes: int, prior: float = 0.01):
    super().__init__(ch, convs)
    self.cls_logits, self.num_classes = Conv2d(ch, anchors * num_classes, 3, padding=1), num_classes
    _normal(self.cls_logits, 0.01, -math.log((1 - prior) / prior))

  def __call__(self, feats: list[Tensor]) -> Tensor: return self._apply(feats, self.cls_logits, self.num_classes)


class RegressionHead(_Head):
  """Box deltas (N, A, 4), encoded as `retinanet_boxes.encode` writes them."""
  def __init__(self, ch: int, convs: int, anchors: int):
    super().__init__(ch, convs)
    self.bbox_reg = Conv2d(ch, anchors * 4, 3, padding=1)
    _normal(self.bbox_reg, 0.01)

  def __call__(self, feats: list[Tensor]) -> Tensor: return self._apply(feats, self.bbox_reg, 4)


class Head:
  def __init__(self, cfg: RetinaNetConfig, anchors: int):
    self.classification_head = ClassificationHead(cfg.fpn_channels, cfg.head_convs, anchors, cfg.num_classes)
    self.regression_head = RegressionHead(cfg.fpn_channels, cfg.head_convs, anchors)


class RetinaNet:
  """(N, 3, S, S) normalized images -> (class logits (N, A, num_classes), box deltas (N, A, 4)) over all A anchors."""
  ANCHORS_PER_LOCATION = 9  # 3 scales x 3 aspect ratios

  def __init__(self, cfg: RetinaNetConfig):
    if cfg.image_size % 32: raise ValueError(f"image_size must be a multiple of 32 (C5 has stride 32), not {cfg.image_size}")
    self.cfg = cfg
    self.backbone = Backbone(cfg)
    self.head = Head(cfg, self.ANCHORS_PER_LOCATION)
    frozen = ["conv1", "layer1", "layer2", "layer3", "layer4"][:5 - cfg.trainable_layers]
    for name in frozen + ["bn1"] * ("conv1" in frozen):  # torchvision's trainable_backbone_layers: the first stages stay as pretrained
      for t in nn.state.get_parameters(getattr(self.backbone.body, name)): t.is_param_(False)

  def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
    feats = self.backbone.fpn(self.backbone.body(x))
    return self.head.classification_head(feats), self.head.regression_head(feats)

  def trainable(self) -> dict[str, Tensor]:
    """The parameters an optimizer updates (named as in the state dict); running BatchNorm statistics are not among them."""
    return {k: v for k, v in nn.state.get_state_dict(self).items() if v.is_param}


def _normal(conv: Conv2d, std: float, bias: float = 0.0) -> None:
  conv.weight = Tensor.normal(*conv.weight.shape, std=std)
  conv.bias = Tensor.full(conv.bias.shape, bias)


def _kaiming_uniform_a1(conv: Conv2d) -> None:
  # torchvision's FPN init: kaiming_uniform_(a=1) -> bound sqrt(3 / fan_in), bias 0
  fan_in = math.prod(conv.weight.shape[1:])
  conv.weight = Tensor.uniform(*conv.weight.shape, low=-math.sqrt(3 / fan_in), high=math.sqrt(3 / fan_in))
  conv.bias = Tensor.zeros(conv.bias.shape)
