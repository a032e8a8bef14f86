import numpy as np
import pytest
import torch

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


def test_forced_steps_hold_compiled_tiny_to_pytorch_float32s_error(data, tiny, fresh_dynamo):
  from tinybounty.bounties.b03_mnist_compile import GAIN_TOLERANCE, forced_errors, reduction_terms
  forced = bm.forced_steps(data, 4, {1, 2, 4}, "tiny", "tiny", batch_size=16, progress=False)
  assert [f.step for f in forced] == [1, 2, 4]
  assert all(f.loss_torch32 < 1e-5 and f.gain_torch32 < 1e-4 for f in forced), forced  # the float64 yardstick itself holds
  loss_x, gain_err = forced_errors(forced, reduction_terms(16))
  assert loss_x <= 1 and gain_err <= GAIN_TOLERANCE, forced


def _neighbours_gradient(gm, example_inputs):
  """A torch.compile backend with a planted bug: each sample's output passes backward its neighbour's gradient (a
  uniformly scaled gradient would not do: Adam's step is scale-invariant)."""
  class Roll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x): return x.view_as(x)
    @staticmethod
    def backward(ctx, g): return g.roll(1, 0)
  def run(*args):
    out = gm(*args)
    if isinstance(out, torch.Tensor) and out.requires_grad: return Roll.apply(out)
    if isinstance(out, (list, tuple)): return type(out)(Roll.apply(o) if isinstance(o, torch.Tensor) and o.requires_grad else o for o in out)
    return out
  return run


def test_forced_steps_catch_a_wrong_gradient_the_loss_does_not_show(data, fresh_dynamo):
  from tinybounty.bounties.b03_mnist_compile import GAIN_TOLERANCE, forced_errors, reduction_terms
  forced = bm.forced_steps(data, 3, {1, 2, 3}, "cpu", _neighbours_gradient, batch_size=16, progress=False)
  loss_x, gain_err = forced_errors(forced, reduction_terms(16))
  assert loss_x <= 1  # the forward is PyTorch's own
  assert gain_err > GAIN_TOLERANCE, forced
