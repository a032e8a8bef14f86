"""RetinaNet's box arithmetic on the host (numpy): anchors, IoU matching, box coding, and detection post-processing.

Conventions are torchvision's (MLPerf's reference is built from it): boxes are (x1, y1, x2, y2) in pixels; a level of
stride s has anchors of sizes (b, b 2^(1/3), b 2^(2/3)) for aspect ratios (0.5, 1, 2), rounded, centred on (x s, y s);
an anchor matches the ground truth it overlaps most if IoU >= 0.5, is background below 0.4 and ignored in between, and
every ground truth also claims the anchors that overlap it best (low-quality matches). Matching runs per image in the
data loader, so the jitted training step only sees fixed-shape targets.
"""
from __future__ import annotations

import numpy as np

BACKGROUND, IGNORED = -1, -2
FG_IOU, BG_IOU = 0.5, 0.4
BOX_CLIP = float(np.log(1000.0 / 16))  # torchvision's bound on decoded log-scales


def level_shapes(image_size: int, levels: int) -> list[int]:
  """Feature-map sizes of P3..P(2+levels): stride 8, 16, 32, then stride-2 3x3 convs (padding 1) on P5."""
  sizes = [image_size // 8, image_size // 16, image_size // 32]
  while len(sizes) < levels: sizes.append((sizes[-1] - 1) // 2 + 1)
  return sizes


def anchors(image_size: int, sizes: tuple[int, ...]) -> np.ndarray:
  """All anchors (A, 4), level by level, location-major, the 9 anchors of a location innermost (aspect ratio outer, scale inner)."""
  out = []
  for size, fm in zip(sizes, level_shapes(image_size, len(sizes))):
    scales = np.array([size, size * 2 ** (1 / 3), size * 2 ** (2 / 3)])
    h_ratio = np.sqrt(np.array([0.5, 1.0, 2.0]))
    ws, hs = (1 / h_ratio[:, None] * scales[None]).ravel(), (h_ratio[:, None] * scales[None]).ravel()
    base = np.round(np.stack([-ws, -hs, ws, hs], 1) / 2)
    stride = image_size // fm
    sy, sx = np.meshgrid(np.arange(fm) * stride, np.arange(fm) * stride, indexing="ij")
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], 1)
    out.append((shifts[:, None] + base[None]).reshape(-1, 4))
  return np.concatenate(out).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU matrix (len(a), len(b)) of (x1, y1, x2, y2) boxes."""
  area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
  lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.clip(rb - lt, 0, None).prod(-1)
  return inter / (area(a)[:, None] + area(b)[None] - inter)


def match(gt: np.ndarray, anchor_boxes: np.ndarray) -> np.ndarray:
  """Per anchor: the index of its ground truth box, BACKGROUND or IGNORED."""
  if len(gt) == 0: return np.full(len(anchor_boxes), BACKGROUND, np.int64)
  iou = box_iou(gt, anchor_boxes)
  best, idx = iou.max(0), iou.argmax(0)
  matched = np.where(best < BG_IOU, BACKGROUND, np.where(best < FG_IOU, IGNORED, idx))
  # low-quality matches: anchors tying for a ground truth's best IoU get back their own best ground truth
  lowq = (iou == iou.max(1, keepdims=True)).any(0)
  return np.where(lowq, idx, matched)


def encode(gt: np.ndarray, anchor_boxes: np.ndarray) -> np.ndarray:
  """(dx, dy, dw, dh) of `gt` relative to `anchor_boxes` (box coder weights 1, 1, 1, 1)."""
  aw, ah = anchor_boxes[:, 2] - anchor_boxes[:, 0], anchor_boxes[:, 3] - anchor_boxes[:, 1]
  gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
  ax, ay, gx, gy = anchor_boxes[:, 0] + aw / 2, anchor_boxes[:, 1] + ah / 2, gt[:, 0] + gw / 2, gt[:, 1] + gh / 2
  return np.stack([(gx - ax) / aw, (gy - ay) / ah, np.log(gw / aw), np.log(gh / ah)], 1)


def decode(deltas: np.ndarray, anchor_boxes: np.ndarray) -> np.ndarray:
  """Inverse of `encode` (log-scales clipped as torchvision clips them)."""
  aw, ah = anchor_boxes[:, 2] - anchor_boxes[:, 0], anchor_boxes[:, 3] - anchor_boxes[:, 1]
  cx, cy = anchor_boxes[:, 0] + aw / 2 + deltas[:, 0] * aw, anchor_boxes[:, 1] + ah / 2 + deltas[:, 1] * ah
  w, h = np.exp(np.minimum(deltas[:, 2], BOX_CLIP)) * aw, np.exp(np.minimum(deltas[:, 3], BOX_CLIP)) * ah
  return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def targets(boxes: np.ndarray, labels: np.ndarray, anchor_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The training targets of one image: per-anchor class (label, BACKGROUND or IGNORED) and encoded box (zeros off the foreground)."""
  m = match(boxes, anchor_boxes)
  fg = m >= 0
  cls = np.where(fg, labels[np.maximum(m, 0)] if len(labels) else 0, m).astype(np.int32)
  box = np.zeros((len(anchor_boxes), 4), np.float32)
  if fg.any(): box[fg] = encode(boxes[m[fg]], anchor_boxes[fg])
  return cls, box


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
  """Indices kept by greedy non-maximum suppression, best score first."""
  order, keep = np.argsort(-scores, kind="stable"), []
  while len(order):
    keep.append(i := order[0])
    order = order[1:][box_iou(boxes[i:i + 1], boxes[order[1:]])[0] <= iou]
  return np.array(keep, np.int64)


def detect(logits: np.ndarray, deltas: np.ndarray, anchor_boxes: np.ndarray, image_size: int, level_counts: list[int],
           score_thresh: float = 0.05, topk: int = 1000, nms_iou: float = 0.5, max_dets: int = 300) -> tuple[np.ndarray, ...]:
  """One image's detections as torchvision post-processes them: per level, the top-k (anchor, class) scores above the
  threshold, decoded and clipped; then NMS per class and the best `max_dets`. Returns (boxes, scores, labels)."""
  boxes, scores, labels, start = [], [], [], 0
  num_classes = logits.shape[1]
  for n in level_counts:
    s = 1 / (1 + np.exp(-logits[start:start + n].ravel()))
    keep = np.nonzero(s > score_thresh)[0]
    keep = keep[np.argsort(-s[keep], kind="stable")[:topk]]
    a = start + keep // num_classes
    boxes.append(np.clip(decode(deltas[a], anchor_boxes[a]), 0, image_size))
    scores.append(s[keep]), labels.append(keep % num_classes)
    start += n
  b, s, lab = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
  # per-class NMS in one pass: offset each class's boxes so that boxes of different classes never overlap
  keep = nms(b + (lab * (image_size + 1))[:, None], s, nms_iou)[:max_dets]
  return b[keep], s[keep], lab[keep]
