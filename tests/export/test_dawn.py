"""The same exported kernels, run by tinygrad's own WEBGPU device (Dawn on Mesa's lavapipe) in Python."""
import numpy as np
import pytest
from tinygrad import Tensor, TinyJit

from tinybounty.export.dawn import run_export, webgpu_device
from tinybounty.export.examples import max_abs_diff as max_diff
from tinybounty.export.webgpu import export_model, load_plan


@pytest.mark.parametrize("name", ["mnist_export", "resnet_export", "gpt2_export"])
def test_model_matches_tinygrad_through_dawn(name, request):
  exp = request.getfixturevalue(name)
  precision, outs = run_export(exp.export.out_dir, *exp.steps)
  assert precision == "f32" and max_diff(outs, exp.outputs) <= 1e-4


def test_f16_kernels_match_tinygrad_float16(mnist16_export, web_root):
  assert "shader-f16" in webgpu_device().arch, "Dawn's adapter lacks shader-f16: the f16 kernels cannot be checked"
  precision, outs = run_export(web_root / "mnist16", *mnist16_export.steps)
  assert precision == "f16"
  assert max_diff(outs, mnist16_export.half) <= 2e-3     # same float16 math, different summation order
  assert max_diff(outs, mnist16_export.rounded) <= 2e-2  # float16 activations against float32 ones


def test_f32_fallback_kernels_upcast_the_f16_weights(mnist16_export, web_root):
  precision, outs = run_export(web_root / "mnist16", *mnist16_export.steps, precision="f32")
  assert precision == "f32" and max_diff(outs, mnist16_export.rounded) <= 1e-4


def test_state_the_function_updates_persists_across_runs_even_unnamed(tmp_path):
  box = {"acc": Tensor(np.arange(4, dtype=np.float32)).realize()}
  def acc(): return box["acc"]  # reachable only through another function: export_model cannot name it
  def step(x):
    acc().assign(acc() + x).realize()
    return (acc() * 2).contiguous()
  export_model(TinyJit(step), Tensor.ones(4).realize(), out_dir=tmp_path / "m")  # two calls: acc is now arange + 2
  assert [b.get("weight") for b in load_plan(tmp_path / "m")["plans"]["f32"]["buffers"] if "weight" in b] == ["buffer0"]
  x = np.full(4, 0.5, np.float32)
  _, outs = run_export(tmp_path / "m", [x], [x], [x])
  start = np.arange(4) + 1  # saved as it was before the captured call
  assert max_diff(outs, [[2 * (start + 0.5 * i)] for i in (1, 2, 3)]) == 0
