"""The pieces of an export: launch-size expressions, safetensors files, shards."""
import numpy as np
import pytest
from safetensors.numpy import load_file
from tinygrad import UOp
from tinygrad.uop.ops import sym_infer

from tinybounty.export.webgpu import eval_expr, expr, read_safetensors, shard, write_safetensors


@pytest.mark.parametrize("make", [lambda p: p + 1, lambda p: (p + 3) // 4, lambda p: (p * 5 + 7) % 6, lambda p: (p + 1).maximum(3) * 2])
def test_launch_size_expressions_evaluate_like_tinygrad(make):
  p = UOp.variable("start_pos", 0, 63)
  e = expr(size := make(p))
  for v in (0, 1, 5, 17, 63): assert eval_expr(e, {"start_pos": v}) == sym_infer(size, {"start_pos": v})


def test_safetensors_round_trip_matches_the_reference_reader(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {"w": rng.standard_normal((3, 5)).astype(np.float32), "h": rng.standard_normal(7).astype(np.float16),
             "i": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.array([True, False, True])}
  write_safetensors(tmp_path / "a.safetensors", tensors)
  for got in (read_safetensors(tmp_path / "a.safetensors"), load_file(str(tmp_path / "a.safetensors"))):
    assert got.keys() == tensors.keys()
    for k in tensors: np.testing.assert_array_equal(got[k], tensors[k]); assert got[k].dtype == tensors[k].dtype


def test_shards_respect_the_size_limit_and_keep_order():
  tensors = {f"t{i}": np.zeros(n, np.float32) for i, n in enumerate([10, 20, 300, 5, 5])}
  parts = shard(tensors, 128)
  assert [list(p) for p in parts] == [["t0", "t1"], ["t2"], ["t3", "t4"]]
