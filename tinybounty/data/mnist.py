"""MNIST in its IDX format (gzipped or not): reading, writing, and an MNIST-format set made from scikit-learn's digits."""
from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

from tinybounty.data.files import atomic_write

# IDX type codes (the third byte of the magic number) and the numpy dtype each stores, big-endian.
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _open(path: pathlib.Path):
  return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """One IDX file as a numpy array of its stored shape and dtype (native byte order)."""
  path = pathlib.Path(path)
  with _open(path) as f: raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
    raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
  dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
  want = int(np.prod(shape)) * dtype.itemsize
  if len(raw) - 4 - 4 * ndim != want:
    raise ValueError(f"{path}: IDX header says shape {shape} ({want} bytes of data) but the file holds {len(raw) - 4 - 4 * ndim}")
  return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, arr: np.ndarray) -> None:
  """Write an array as an IDX file; a name ending in .gz is gzipped."""
  path, arr = pathlib.Path(path), np.asarray(arr)
  code = next((c for c, d in IDX_DTYPES.items() if d.newbyteorder("=") == arr.dtype.newbyteorder("=")), None)
  if code is None: raise ValueError(f"IDX cannot store dtype {arr.dtype}")
  data = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes() + arr.astype(IDX_DTYPES[code]).tobytes()
  with atomic_write(path) as f: f.write(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def _find(directory: pathlib.Path, name: str) -> pathlib.Path:
  for stem in (name, name.replace("-idx", ".idx")):  # both spellings circulate
    for cand in (directory / stem, directory / f"{stem}.gz"):
      if cand.exists(): return cand
  raise FileNotFoundError(f"{directory}: no {name} or {name}.gz (MNIST IDX files expected)")


def load_mnist(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(train images N x 28 x 28 uint8, train labels N uint8, test images, test labels) from MNIST's four IDX files."""
  d = pathlib.Path(directory)
  x_train, y_train, x_test, y_test = (read_idx(_find(d, FILES[k])) for k in ("train_images", "train_labels", "test_images", "test_labels"))
  for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y): raise ValueError(f"{d}: {split} images {x.shape} and labels {y.shape} do not match")
  return x_train, y_train, x_test, y_test


def _resize_bilinear(imgs: np.ndarray, size: int) -> np.ndarray:
  """Resize N x h x w images to N x size x size by bilinear interpolation (pixel centres aligned)."""
  h = imgs.shape[1]
  pos = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
  lo = np.floor(pos).astype(int)
  hi, frac = np.minimum(lo + 1, h - 1), pos - lo
  rows = imgs[:, lo, :] * (1 - frac)[None, :, None] + imgs[:, hi, :] * frac[None, :, None]
  return rows[:, :, lo] * (1 - frac) + rows[:, :, hi] * frac


def digits_28x28(n_train: int = 8000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """scikit-learn's 1797 8x8 digits as MNIST-like 28x28 uint8 images (a 20x20 digit in a 28x28 field, as MNIST).

  The last 297 digits are the test set, centred. The train set is the other 1500, drawn to `n_train` images with
  random shifts of up to 2 pixels, so that different training steps see different images.
  """
  from sklearn.datasets import load_digits
  digits = load_digits()
  imgs = _resize_bilinear(digits.images.astype(np.float32) / 16.0, 20)
  imgs = np.pad(np.clip(imgs * 255, 0, 255).round().astype(np.uint8), ((0, 0), (4, 4), (4, 4)))
  labels = digits.target.astype(np.uint8)
  rng = np.random.default_rng(seed)
  pick = rng.integers(0, 1500, n_train)
  shifts = rng.integers(-2, 3, (n_train, 2))
  x_train = np.stack([np.roll(imgs[i], tuple(s), axis=(0, 1)) for i, s in zip(pick, shifts)])
  return x_train, labels[pick], imgs[1500:], labels[1500:]


def write_mnist_like(directory: str | os.PathLike, n_train: int = 8000, seed: int = 0, gz: bool = True) -> pathlib.Path:
  """Write an MNIST-format data set (the four IDX files) made from scikit-learn's digits; returns the directory."""
  d = pathlib.Path(directory)
  for key, arr in zip(("train_images", "train_labels", "test_images", "test_labels"), digits_28x28(n_train, seed)):
    write_idx(d / (FILES[key] + (".gz" if gz else "")), arr)
  return d
