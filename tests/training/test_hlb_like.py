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
  ref, ref_times, init, _ = compare.run(SCRIPT, "cpu", 1, 0, None, argv, quiet=True)
  got, got_times, *_ = compare.run(SCRIPT, "tiny", 1, 0, init, argv, quiet=True)
  assert len(got) == len(ref) == 2 and np.allclose(got, ref, rtol=1e-4), (got, ref)
  assert len(got_times) == len(ref_times) == 1 and got_times[0] > 0
