"""CIFAR-10 in its python pickle batches: reading, and writing a synthetic set with learnable class structure."""
from __future__ import annotations

import os
import pathlib
import pickle

import numpy as np

from tinybounty.data.files import atomic_write

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _batch_dir(directory: pathlib.Path) -> pathlib.Path:
  for d in (directory, directory / "cifar-10-batches-py"):
    if (d / "test_batch").exists(): return d
  raise FileNotFoundError(f"{directory}: no CIFAR-10 python batches (data_batch_1..5 and test_batch) here or in cifar-10-batches-py/")


def _read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  with open(path, "rb") as f: d = pickle.load(f, encoding="bytes")
  if not isinstance(d, dict) or b"data" not in d or b"labels" not in d: raise ValueError(f"{path}: not a CIFAR-10 batch (no data/labels)")
  data, labels = np.asarray(d[b"data"], np.uint8), np.asarray(d[b"labels"], np.int64)
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
    raise ValueError(f"{path}: data {data.shape} and labels {labels.shape} are not N x 3072 and N")
  return data.reshape(-1, 3, 32, 32), labels


def load_cifar(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(train images N x 3 x 32 x 32 uint8, train labels N int64, test images, test labels) from CIFAR-10's pickles."""
  d = _batch_dir(pathlib.Path(directory))
  missing = [b for b in TRAIN_BATCHES if not (d / b).exists()]
  if missing: raise FileNotFoundError(f"{d}: missing {', '.join(missing)}")
  train = [_read_batch(d / b) for b in TRAIN_BATCHES]
  x_test, y_test = _read_batch(d / "test_batch")
  return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


def _write_batch(path: pathlib.Path, label: str, x: np.ndarray, y: np.ndarray) -> None:
  batch = {b"batch_label": label.encode(), b"labels": [int(v) for v in y], b"data": x.reshape(len(x), -1),
           b"filenames": [f"synthetic_{label.replace(' ', '_')}_{i}.png".encode() for i in range(len(x))]}
  with atomic_write(path) as f: pickle.dump(batch, f, protocol=2)


def synthetic_images(n: int, rng: np.random.Generator, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """n images (n x 3 x 32 x 32 uint8) of the classes whose 32x32 colour templates are given, with their labels.

  Each image is its class template, randomly shifted, flipped and rescaled in brightness, blended with another
  class's template and pixel noise: learnable, yet not separable by a linear probe on raw pixels after a few steps.
  """
  y = rng.integers(0, len(templates), n)
  other = rng.integers(0, len(templates), n)
  img = 0.7 * templates[y] + 0.3 * templates[other]
  shift = rng.integers(-4, 5, (n, 2))
  img = np.stack([np.roll(im, tuple(s), axis=(1, 2)) for im, s in zip(img, shift)])
  flip = rng.random(n) < 0.5
  img[flip] = img[flip][..., ::-1]
  img = img * rng.uniform(0.6, 1.2, (n, 1, 1, 1)) + rng.normal(0, 0.12, img.shape)
  return np.clip(img * 255, 0, 255).astype(np.uint8), y


def _templates(rng: np.random.Generator) -> np.ndarray:
  """One smooth 3 x 32 x 32 colour pattern per class: a low-frequency random field plus an oriented grating."""
  coarse = rng.random((len(CLASSES), 3, 4, 4))
  smooth = coarse.repeat(8, axis=2).repeat(8, axis=3)
  yy, xx = np.mgrid[0:32, 0:32] / 32.0
  angle, freq = rng.uniform(0, np.pi, len(CLASSES)), rng.uniform(2, 6, len(CLASSES))
  grating = np.sin(2 * np.pi * freq[:, None, None] * (np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy))
  return np.clip(0.6 * smooth + 0.25 * grating[:, None] + 0.2, 0, 1)


def write_cifar_like(directory: str | os.PathLike, n_train: int = 10000, n_test: int = 2500, seed: int = 0) -> pathlib.Path:
  """Write a CIFAR-10-format data set (data_batch_1..5, test_batch, batches.meta) of synthetic images; returns the directory."""
  d, rng = pathlib.Path(directory), np.random.default_rng(seed)
  templates = _templates(rng)
  for i, n in enumerate(np.diff(np.linspace(0, n_train, len(TRAIN_BATCHES) + 1).astype(int))):
    _write_batch(d / TRAIN_BATCHES[i], f"training batch {i + 1} of 5", *synthetic_images(int(n), rng, templates))
  _write_batch(d / "test_batch", "testing batch 1 of 1", *synthetic_images(n_test, rng, templates))
  meta = {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": n_train // 5, b"num_vis": 3072}
  with atomic_write(d / "batches.meta") as f: pickle.dump(meta, f, protocol=2)
  return d
