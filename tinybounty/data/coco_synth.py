"""Detection data in COCO's format: a generator of drawn-object images, and a loader for any COCO-format set.

`write_coco(root)` draws JPEG images of coloured shapes on textured backgrounds (class = shape: square, disc,
triangle) and writes root/{train,val}/*.jpg with root/annotations/instances_{train,val}.json, the layout of COCO 2017 and
of MLPerf's OpenImages subset (whose labels file is COCO-format too). `CocoDetection` reads such a set: it validates the
annotations, maps category ids to contiguous labels, resizes every image to the model's square input as MLPerf's
reference does (boxes scaled with it), and serves batches with the reference's augmentation (random horizontal flip).
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from tinybounty.data.files import atomic_write

CLASSES = ("square", "disc", "triangle")
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


class CocoError(ValueError):
  """A detection data set that is missing or malformed."""


def write_coco(root: str | os.PathLike, n_train: int = 256, n_val: int = 64, seed: int = 0, max_objects: int = 4) -> pathlib.Path:
  """Draw the set into `root` (images of 96-192 px a side, 1-`max_objects` objects each); returns `root`."""
  from PIL import Image, ImageDraw
  root = pathlib.Path(root)
  for split, n in (("train", n_train), ("val", n_val)):
    rng = np.random.default_rng([seed, split == "val"])
    (root / split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
      w, h = (int(v) for v in rng.integers(96, 193, 2))
      base = rng.uniform(40, 200, 3)[:, None, None] + rng.normal(0, 12, (3, h // 8 + 1, w // 8 + 1)).repeat(8, 1).repeat(8, 2)[:, :h, :w]
      img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8).transpose(1, 2, 0))
      draw = ImageDraw.Draw(img)
      for _ in range(int(rng.integers(1, max_objects + 1))):
        c, size = int(rng.integers(len(CLASSES))), int(rng.integers(min(w, h) // 6, min(w, h) // 2))
        x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = [x, y, x + size, y + size]
        if CLASSES[c] == "square": draw.rectangle(box, fill=colour)
        elif CLASSES[c] == "disc": draw.ellipse(box, fill=colour)
        else: draw.polygon([(x, y + size), (x + size, y + size), (x + size / 2, y)], fill=colour)
        anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=c + 1, bbox=[x, y, size + 1, size + 1],  # PIL fills both ends
                         area=float((size + 1) ** 2), iscrowd=0))
      name = f"{i:06d}.jpg"
      img.save(root / split / name, quality=95)
      images.append(dict(id=i + 1, file_name=name, width=w, height=h))
    doc = dict(images=images, annotations=anns, categories=[dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)])
    (root / "annotations").mkdir(exist_ok=True)
    with atomic_write(root / "annotations" / f"instances_{split}.json") as f: f.write(json.dumps(doc).encode())
  return root


class CocoDetection:
  """A COCO-format split, resized to `size` x `size` and normalized, held in memory.

  images: (N, 3, size, size) float32; boxes[i]: (k, 4) x1y1x2y2 in the resized image; labels[i]: (k,) in 0..num_classes-1;
  `ids` are the COCO image ids and `scales` the (sx, sy) from original to resized pixels, to map detections back.
  """
  def __init__(self, images_dir: str | os.PathLike, annotations: str | os.PathLike, size: int, limit: int | None = None):
    from PIL import Image
    self.annotation_file, self.size = pathlib.Path(annotations), size
    doc = _read_json(self.annotation_file)
    self.category_ids = sorted(c["id"] for c in doc["categories"])
    label_of = {c: i for i, c in enumerate(self.category_ids)}
    per_image: dict[int, list] = {im["id"]: [] for im in doc["images"]}
    for a in doc["annotations"]:
      bbox, where = a.get("bbox"), f"{self.annotation_file}: annotation {a.get('id')}"
      if a.get("image_id") not in per_image: raise CocoError(f"{where} names unknown image {a.get('image_id')}")
      if a.get("category_id") not in label_of: raise CocoError(f"{where} has unknown category {a.get('category_id')}")
      if not (isinstance(bbox, list) and len(bbox) == 4) or min(bbox[2:]) < 0:
        raise CocoError(f"{where} has bbox {bbox!r}; COCO's is [x, y, w, h], w, h >= 0")
      if a.get("iscrowd", 0) or min(bbox[2:]) < 1: continue  # crowd regions and degenerate boxes are not training targets
      per_image[a["image_id"]].append((bbox, label_of[a["category_id"]]))
    entries = doc["images"][:limit]
    self.ids, self.scales = [im["id"] for im in entries], []
    self.images = np.empty((len(entries), 3, size, size), np.float32)
    self.boxes, self.labels = [], []
    for i, im in enumerate(entries):
      path = pathlib.Path(images_dir) / im["file_name"]
      if not path.is_file(): raise CocoError(f"{path}: image {im['id']} of {self.annotation_file} is missing")
      with Image.open(path) as f:
        rgb = f.convert("RGB")
        sx, sy = size / rgb.width, size / rgb.height
        self.images[i] = ((np.asarray(rgb.resize((size, size), Image.BILINEAR), np.float32) / 255 - MEAN) / STD).transpose(2, 0, 1)
      b = np.array([x for x, _ in per_image[im["id"]]], np.float32).reshape(-1, 4)
      self.boxes.append(np.stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx, (b[:, 1] + b[:, 3]) * sy], 1))
      self.labels.append(np.array([lab for _, lab in per_image[im["id"]]], np.int64))
      self.scales.append((sx, sy))

  @property
  def num_classes(self) -> int: return len(self.category_ids)

  def __len__(self) -> int: return len(self.images)

  def batch(self, idx: np.ndarray, flips: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Images, boxes and labels of `idx`, each image flipped left-right where `flips` is set."""
    images, boxes = self.images[idx].copy(), [self.boxes[i].copy() for i in idx]
    for k in np.nonzero(flips)[0] if flips is not None else []:
      images[k] = images[k][:, :, ::-1]
      boxes[k][:, [0, 2]] = self.size - boxes[k][:, [2, 0]]
    return images, boxes, [self.labels[i] for i in idx]


def split_paths(root: str | os.PathLike, split: str) -> tuple[pathlib.Path, pathlib.Path]:
  """(images directory, annotation file) of a split in write_coco's (and COCO 2017's) layout."""
  root = pathlib.Path(root)
  return root / split, root / "annotations" / f"instances_{split}.json"


def _read_json(path: pathlib.Path) -> dict:
  if not path.is_file(): raise CocoError(f"{path}: no such annotation file")
  try: doc = json.loads(path.read_text())
  except (OSError, ValueError) as e: raise CocoError(f"{path}: not JSON ({e})") from None
  if not isinstance(doc, dict) or (missing := [k for k in ("images", "annotations", "categories") if k not in doc]):
    raise CocoError(f"{path}: not a COCO annotation file (lacks {missing if isinstance(doc, dict) else 'a top-level object'})")
  return doc
