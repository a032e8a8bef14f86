"""Training checkpoints: the values and RNG state come back, and a checkpoint of another run or a foreign file is refused."""
import numpy as np
import pytest
from tinygrad import Tensor

from tinybounty.mlperf.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_values_come_back_and_other_runs_are_refused(tmp_path):
  path = tmp_path / "ckpt.safetensors"
  saved = {"w": Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)), "m": Tensor([0.5, -1.0])}
  save_checkpoint(path, saved, {"step": 7, "run": {"lr": 1e-3, "seed": 0}})
  fresh = {"w": Tensor.zeros(2, 3).contiguous().realize(), "m": Tensor.zeros(2).contiguous().realize()}
  with pytest.raises(CheckpointError, match="differs in lr"): load_checkpoint(path, fresh, run={"lr": 5e-4, "seed": 0})
  assert not fresh["w"].numpy().any()  # a refused checkpoint assigns nothing
  assert load_checkpoint(path, fresh, run={"lr": 1e-3, "seed": 0})["step"] == 7
  np.testing.assert_array_equal(fresh["w"].numpy(), saved["w"].numpy())
  np.testing.assert_array_equal(fresh["m"].numpy(), saved["m"].numpy())
  load_checkpoint(path, fresh)
  first = Tensor.rand(3).numpy()
  load_checkpoint(path, fresh)
  np.testing.assert_array_equal(Tensor.rand(3).numpy(), first)  # the same draws after each resume


def test_missing_and_foreign_files_are_refused(tmp_path):
  with pytest.raises(CheckpointError, match="no checkpoint"): load_checkpoint(tmp_path / "none", {})
  (bad := tmp_path / "bad.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
  with pytest.raises(CheckpointError, match="not a tinybounty checkpoint"): load_checkpoint(bad, {})
