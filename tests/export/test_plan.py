"""The pieces of an export: launch-size expressions, safetensors files, shards."""
import numpy as np
import pytest
from safetensors.numpy import load_file
from tinygrad import UOp
from tinygrad.uop.ops import sym_infer

from tinybounty.export.webgpu import eval_expr, expr, read_safetensors, shard, share_scratch, write_safetensors


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


def test_intermediates_share_buffers_only_when_their_lifetimes_do_not_overlap():
  # 0 input, 1 weight, 2..4 intermediates, 5 output: 2 lives in dispatches 0-1, 3 in 1-2, 4 in 2-3
  buffers = [{"bytes": 64, "dtype": "float32"}, {"bytes": 64, "dtype": "float32", "weight": "w"}] + \
            [{"bytes": n, "dtype": "float32"} for n in (32, 16, 48)] + [{"bytes": 8, "dtype": "float32"}]
  kernels = [{"bufs": [2, 0, 1]}, {"bufs": [3, 2]}, {"bufs": [4, 3]}, {"bufs": [5, 4]}]
  out, remap = share_scratch(buffers, kernels, pinned={0, 5})
  assert remap[2] == remap[4] != remap[3] and len(out) == 5
  assert out[remap[2]]["bytes"] == 48 and out[remap[1]] == buffers[1] and out[remap[5]] == buffers[5]
  for k in kernels: assert len({remap[b] for b in k["bufs"]}) == len(k["bufs"])  # no dispatch binds one buffer twice
