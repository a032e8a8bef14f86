"""The PyTorch reference RetinaNet, written from torchvision's retinanet_resnet50_fpn (torchvision's wheel here is a CUDA
build whose C ops fail beside the CPU torch, so its definitions are re-expressed, not imported), and its loss.

The modules carry torchvision's parameter names, so `load_state_dict` takes tinybounty's tinygrad state dict. The loss
is torchvision's RetinaNetHead.compute_loss: the matching (Matcher(0.5, 0.4, allow_low_quality_matches=True)) and box
coding run here in torch per image, independently of the numpy ones the tinygrad trainer uses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinybounty.models.retinanet import RetinaNetConfig


class FrozenBN(nn.Module):
  def __init__(self, n: int, eps: float = 1e-5):
    super().__init__()
    for k, v in (("weight", 1), ("bias", 0), ("running_mean", 0), ("running_var", 1)): self.register_buffer(k, torch.full((n,), float(v)))
    self.eps = eps

  def forward(self, x):
    scale = self.weight * (self.running_var + self.eps).rsqrt()
    return x * scale.view(1, -1, 1, 1) + (self.bias - self.running_mean * scale).view(1, -1, 1, 1)


def _norm(cfg: RetinaNetConfig, n: int) -> nn.Module: return FrozenBN(n) if cfg.norm == "frozen" else nn.BatchNorm2d(n)


class Bottleneck(nn.Module):
  def __init__(self, cfg: RetinaNetConfig, cin: int, width: int, cout: int, stride: int):
    super().__init__()
    self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), _norm(cfg, width)
    self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, groups=cfg.groups, bias=False), _norm(cfg, width)
    self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), _norm(cfg, cout)
    self.downsample = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cfg, cout))

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = F.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Body(nn.Module):
  def __init__(self, cfg: RetinaNetConfig):
    super().__init__()
    self.conv1, self.bn1 = nn.Conv2d(3, cfg.stem, 7, 2, 3, bias=False), _norm(cfg, cfg.stem)
    cin = cfg.stem
    for i, n in enumerate(cfg.blocks):
      width, cout = cfg.groups * cfg.group_width * 2**i, cfg.stem * 4 * 2**i
      self.add_module(f"layer{i+1}", nn.Sequential(*[Bottleneck(cfg, cin if j == 0 else cout, width, cout, 2 if i > 0 and j == 0 else 1)
                                                     for j in range(n)]))
      cin = cout

  def forward(self, x):
    x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
    x = self.layer1(x)
    c3 = self.layer2(x)
    c4 = self.layer3(c3)
    return [c3, c4, self.layer4(c4)]


class LastLevelP6P7(nn.Module):
  def __init__(self, ch: int):
    super().__init__()
    self.p6, self.p7 = nn.Conv2d(ch, ch, 3, 2, 1), nn.Conv2d(ch, ch, 3, 2, 1)


class FPN(nn.Module):
  def __init__(self, cfg: RetinaNetConfig):
    super().__init__()
    ins, ch = [cfg.stem * 4 * 2**i for i in (1, 2, 3)], cfg.fpn_channels
    self.inner_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(c, ch, 1)) for c in ins])
    self.layer_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1)) for _ in ins])
    self.extra_blocks = LastLevelP6P7(ch)

  def forward(self, feats):
    last = self.inner_blocks[-1](feats[-1])
    outs = [self.layer_blocks[-1](last)]
    for i in range(len(feats) - 2, -1, -1):
      lateral = self.inner_blocks[i](feats[i])
      last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
      outs.insert(0, self.layer_blocks[i](last))
    p6 = self.extra_blocks.p6(outs[-1])
    return outs + [p6, self.extra_blocks.p7(F.relu(p6))]


class Backbone(nn.Module):
  def __init__(self, cfg: RetinaNetConfig):
    super().__init__()
    self.body, self.fpn = Body(cfg), FPN(cfg)


def _tower(ch: int, n: int) -> nn.Sequential: return nn.Sequential(*[nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()) for _ in range(n)])


def _per_anchor(outs: list[torch.Tensor], k: int) -> torch.Tensor:
  flat = []
  for o in outs:
    n, _, h, w = o.shape
    flat.append(o.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k))
  return torch.cat(flat, 1)


class Head(nn.Module):
  def __init__(self, cfg: RetinaNetConfig):
    super().__init__()
    ch, a = cfg.fpn_channels, 9
    self.classification_head = nn.Module()
    self.classification_head.conv, self.classification_head.cls_logits = _tower(ch, cfg.head_convs), nn.Conv2d(ch, a * cfg.num_classes, 3, padding=1)
    self.regression_head = nn.Module()
    self.regression_head.conv, self.regression_head.bbox_reg = _tower(ch, cfg.head_convs), nn.Conv2d(ch, a * 4, 3, padding=1)


class RetinaNetReference(nn.Module):
  """images -> (class logits (N, A, K), box deltas (N, A, 4)), as torchvision's RetinaNet head returns them."""
  def __init__(self, cfg: RetinaNetConfig):
    super().__init__()
    self.cfg = cfg
    self.backbone, self.head = Backbone(cfg), Head(cfg)

  def forward(self, x):
    feats = self.backbone.fpn(self.backbone.body(x))
    c, r = self.head.classification_head, self.head.regression_head
    return (_per_anchor([c.cls_logits(c.conv(f)) for f in feats], self.cfg.num_classes),
            _per_anchor([r.bbox_reg(r.conv(f)) for f in feats], 4))


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
  area_a, area_b = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  inter = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0).prod(2)
  return inter / (area_a[:, None] + area_b[None] - inter)


def matcher(gt: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
  """torchvision's Matcher(0.5, 0.4, allow_low_quality_matches=True): gt index, -1 below 0.4, -2 between."""
  if gt.numel() == 0: return torch.full((anchors.shape[0],), -1, dtype=torch.int64)
  quality = _iou(gt, anchors)
  vals, matches = quality.max(dim=0)
  all_matches = matches.clone()
  matches[vals < 0.4] = -1
  matches[(vals >= 0.4) & (vals < 0.5)] = -2
  best_per_gt, _ = quality.max(dim=1)
  update = torch.nonzero(quality == best_per_gt[:, None])[:, 1]
  matches[update] = all_matches[update]
  return matches


def encode(gt: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
  pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
  px, py = anchors[:, 0] + 0.5 * pw, anchors[:, 1] + 0.5 * ph
  gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
  gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
  return torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], 1)


def sigmoid_focal_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
  p = torch.sigmoid(x)
  ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
  p_t = p * y + (1 - p) * (1 - y)
  return ((alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma).sum()


def retinanet_loss(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, boxes: list[torch.Tensor],
                   labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
  """(classification, box regression) losses averaged over images, each normalised by its foreground count (torchvision)."""
  cls_losses, box_losses = [], []
  for i, (b, lab) in enumerate(zip(boxes, labels)):
    m = matcher(b, anchors)
    fg = m >= 0
    n_fg = fg.sum()
    target = torch.zeros_like(logits[i])
    target[fg, lab[m[fg]]] = 1.0
    valid = m != -2
    cls_losses.append(sigmoid_focal_loss(logits[i][valid], target[valid]) / max(1, n_fg))
    box_losses.append(F.l1_loss(deltas[i][fg], encode(b[m[fg]], anchors[fg]), reduction="sum") / max(1, n_fg))
  return sum(cls_losses) / len(boxes), sum(box_losses) / len(boxes)


def reference_from(model, dtype=torch.float64) -> RetinaNetReference:
  """The reference with the tinygrad model's weights and statistics (state dicts share torchvision's names)."""
  from tinygrad.nn.state import get_state_dict
  ref = RetinaNetReference(model.cfg).to(dtype)
  sd = {k: torch.from_numpy(v.numpy()) for k, v in get_state_dict(model).items()}
  ref.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()})
  return ref


def step0_errors(model, images: np.ndarray, boxes: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
  """The tinygrad model's step-0 losses and gradients against the reference's in float64, with the same weights.

  Returns the relative errors of the classification and box losses and the worst over trained parameters of
  max|grad - reference| / scale, scale being the reference gradient's own max |value| floored at 1e-3 of the largest
  (gradients that are zero in exact arithmetic are rounding noise on both sides). The tinygrad side matches anchors in
  numpy (`retinanet_boxes.targets`), the reference in torch (`matcher`), so the comparison covers the matching too."""
  from tinygrad import Context, Tensor, dtypes

  from tinybounty.mlperf import retinanet_boxes as rb
  from tinybounty.mlperf.retinanet_train import box_loss, focal_loss, make_targets
  cfg = model.cfg
  anchors = rb.anchors(cfg.image_size, cfg.anchor_sizes)
  cls_t, box_t = make_targets(boxes, labels, anchors)
  params = model.trainable()
  ref = reference_from(model)  # before the forward pass, which moves BatchNorm's running statistics in training mode
  with Context(TRAINING=int(cfg.norm == "batch")):
    logits, deltas = model(Tensor(images))
    ct = Tensor(cls_t, dtype=dtypes.int32)
    lc, lb = focal_loss(logits, ct), box_loss(deltas, ct, Tensor(box_t))
    gs = (lc + lb).gradient(*params.values())
    Tensor.realize(lc, lb, *gs)  # in one schedule: realized one by one, each would recompute the shared forward
    grads = dict(zip(params, [g.numpy() for g in gs]))
  ref.train(cfg.norm == "batch")
  rl, rd = ref(torch.from_numpy(images).double())
  rc, rr = retinanet_loss(rl, rd, torch.from_numpy(anchors).double(), [torch.from_numpy(b).double() for b in boxes],
                          [torch.from_numpy(lab) for lab in labels])
  (rc + rr).backward()
  named = dict(ref.named_parameters())
  refg = {n: named[n].grad.numpy() for n in grads}
  top = max(np.abs(r).max() for r in refg.values())
  return {"cls_loss": abs(lc.item() - rc.item()) / abs(rc.item()), "box_loss": abs(lb.item() - rr.item()) / max(abs(rr.item()), 1e-30),
          "grad": float(max(np.abs(grads[n] - r).max() / max(np.abs(r).max(), 1e-3 * top) for n, r in refg.items())),
          "loss": rc.item() + rr.item()}
