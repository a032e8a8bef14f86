import numpy as np
import pytest

from tinybounty.torch_backend import beautiful_mnist as bm


@pytest.fixture(scope="module")
def data():
  return bm.load()


def test_compiled_tiny_trains_like_eager_cpu(data, tiny, fresh_dynamo):
  _, cpu = bm.train(data, 3, "cpu", None, batch_size=16, progress=False)
  _, got = bm.train(data, 3, "tiny", "tiny", batch_size=16, progress=False)
  assert np.allclose(got.losses, cpu.losses, rtol=2e-3), (got.losses, cpu.losses)
  assert abs(got.accuracies[-1] - cpu.accuracies[-1]) <= 0.5
  assert fresh_dynamo.model_breaks() == 0 and fresh_dynamo.compile_stats()["fallbacks"] == 0


def test_main_saves_a_plot(tmp_path, capsys):
  assert bm.main(["--device", "cpu", "--steps", "2", "--batch-size", "8", "--eval-every", "1", "--plot", str(tmp_path / "m.png")]) == 0
  assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG" and "test accuracy" in capsys.readouterr().out
