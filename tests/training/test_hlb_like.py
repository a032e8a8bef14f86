import pathlib

import numpy as np
import pytest

from tinybounty.runner import compare, run

SCRIPT = pathlib.Path(run.__file__).parent / "scripts" / "hlb_like.py"


@pytest.mark.slow
def test_hlb_like_trains_on_tiny_like_on_cpu(tmp_path, monkeypatch, tiny):
  """main.py's op mix (whitening init, channels_last, crops/flips, GELU/BN/max-pool groups, label smoothing, nesterov SGD,
  OneCycleLR, EMA, cuda events), scaled down, through the runner: tiny vs CPU from identical weights and batches."""
  monkeypatch.chdir(tmp_path)
  run.write_data_cache(run.find_data_location(SCRIPT), n_train=128, n_test=250)
  argv = ["--epochs", "1", "--steps", "2", "--widths", "8", "8", "8", "--float32"]
  ref = compare.run(SCRIPT, "cpu", 1, 0, None, argv, quiet=True)
  got = compare.run(SCRIPT, "tiny", 1, 0, ref.init, argv, quiet=True)
  assert len(got.losses) == len(ref.losses) == 2 and np.allclose(got.losses, ref.losses, rtol=1e-4), (got.losses, ref.losses)
  assert len(got.epoch_times) == len(ref.epoch_times) == 1 and got.epoch_times[0] > 0


def test_last_val_acc_reads_the_column_main_py_names():
  """main.py's table: the val_acc column of its last epoch row, found by its head (hlb_like's table has none)."""
  head = "|  epoch  |  train_loss  |  val_loss  |  train_acc  |  val_acc  |  ema_val_acc  |  total_time_seconds  |"
  rows = ["|      0  |      2.3011  |    2.1002  |     0.1250  |   0.2211  |               |              4.1000  |",
          "|     11  |      0.3011  |    0.6002  |     0.9250  |   0.9391  |       0.9412  |             10.1000  |"]
  assert compare.last_val_acc("\n".join(["-" * 20, head, "-" * 20, *rows])) == 0.9391
  assert compare.last_val_acc("\n".join([head, rows[0]])) == 0.2211
  assert compare.last_val_acc("|  epoch  |  ema_val_acc  |\n|  0  |  0.5  |") is None
  assert compare.last_val_acc(head) is None
