import gzip
import pickle

import numpy as np
import pytest

from tinybounty.data import load_cifar, load_mnist, read_idx, write_cifar_like, write_idx, write_mnist_like


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, name, dtype):
  arr = (np.arange(2 * 3 * 4) * 7 % 251).astype(dtype).reshape(2, 3, 4)
  write_idx(tmp_path / name, arr)
  got = read_idx(tmp_path / name)
  assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr)


def test_idx_header_is_mnists(tmp_path):
  write_idx(tmp_path / "x.gz", np.zeros((5, 28, 28), np.uint8))
  raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
  assert raw[:4] == bytes([0, 0, 8, 3]) and np.frombuffer(raw[4:16], ">u4").tolist() == [5, 28, 28] and len(raw) == 16 + 5 * 28 * 28


def test_idx_bad_files_are_named(tmp_path):
  (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
  with pytest.raises(ValueError, match="not an IDX file"): read_idx(tmp_path / "bad")
  (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + np.array([10], ">u4").tobytes() + b"\x00" * 3)
  with pytest.raises(ValueError, match="holds 3"): read_idx(tmp_path / "short")
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"): load_mnist(tmp_path)


def test_mnist_like_set_reads_as_mnist(tmp_path):
  x, y, xt, yt = load_mnist(write_mnist_like(tmp_path, n_train=300, gz=False))
  assert x.shape == (300, 28, 28) and xt.shape == (297, 28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
  assert set(np.unique(yt)) == set(range(10)) and x[:, :2].max() <= x.max() and x.max() > 200  # digits, with MNIST's dark border


def test_cifar_like_set_reads_as_cifar(tmp_path):
  x, y, xt, yt = load_cifar(write_cifar_like(tmp_path, n_train=50, n_test=20))
  assert x.shape == (50, 3, 32, 32) and xt.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.max() < 10
  with open(tmp_path / "data_batch_1", "rb") as f: batch = pickle.load(f, encoding="bytes")
  assert batch[b"data"].shape == (10, 3072) and len(batch[b"labels"]) == 10  # CIFAR-10's python layout
  # learnable: class means are far apart relative to the spread within a class
  means = np.stack([x[y == c].reshape(-1, 3072).mean(0) for c in np.unique(y)])
  assert np.linalg.norm(means[:, None] - means[None], axis=-1).max() > 500


def test_cifar_missing_batches_are_named(tmp_path):
  write_cifar_like(tmp_path, n_train=10, n_test=5)
  (tmp_path / "data_batch_3").unlink()
  with pytest.raises(FileNotFoundError, match="data_batch_3"): load_cifar(tmp_path)
