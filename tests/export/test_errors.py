"""export_model refuses what it cannot export correctly, names the problem, and never leaves a half-written folder."""
import numpy as np
import pytest
from tinygrad import Tensor, TinyJit, dtypes

import tinybounty.export.webgpu as webgpu
from tinybounty.export.webgpu import ExportError, export_model, load_plan, read_safetensors


def _w(): return Tensor(np.arange(256, dtype=np.float32).reshape(16, 16) / 100)


def test_function_that_is_not_jitted(tmp_path):
  with pytest.raises(ExportError, match="TinyJit"): export_model(lambda x: x * 2, Tensor.ones(4).realize(), out_dir=tmp_path / "m")


def test_unrealized_input(tmp_path):
  with pytest.raises(ExportError, match="input 0 is not realized"): export_model(TinyJit(lambda x: x * 2), Tensor.ones(4) + 1, out_dir=tmp_path / "m")


def test_op_wgsl_cannot_express(tmp_path):
  with pytest.raises(ExportError, match="dtypes.long, which WGSL cannot express"):
    export_model(TinyJit(lambda x: (x.cast(dtypes.int64) * 3).sum().cast(dtypes.int32)), Tensor.ones(4, dtype=dtypes.int32).realize(),
                 out_dir=tmp_path / "m")


def test_buffer_over_the_binding_limit(tmp_path):
  w = _w()
  with pytest.raises(ExportError, match="buffer w is 1024 bytes, over WebGPU.s maxStorageBufferBindingSize"):
    export_model(TinyJit(lambda x: (x @ w).relu()), Tensor.ones(1, 16).realize(), out_dir=tmp_path / "m", limits={"maxStorageBufferBindingSize": 512})


def test_random_numbers_inside_the_graph(tmp_path):
  with pytest.raises(ExportError, match="generates random numbers"):
    export_model(TinyJit(lambda x: x + Tensor.rand(4)), Tensor.ones(4).realize(), out_dir=tmp_path / "m")


def test_weights_are_saved_and_named(tmp_path):
  class Net:
    def __init__(self): self.l = _w()
    def __call__(self, x): return (x @ self.l).relu()
  net = Net()
  e = export_model(TinyJit(net.__call__), Tensor.ones(1, 16).realize(), out_dir=tmp_path / "m")
  (f,) = e.plan["weights"]["files"]
  np.testing.assert_array_equal(read_safetensors(tmp_path / "m" / f["path"])["l"], net.l.numpy())
  assert load_plan(tmp_path / "m") == e.plan and {b.get("weight") for b in e.plan["plans"]["f32"]["buffers"]} == {None, "l"}


def test_failed_write_leaves_the_old_export_and_no_temp_folder(tmp_path, monkeypatch):
  w = _w()
  fn = TinyJit(lambda x: (x @ w).relu())
  export_model(fn, Tensor.ones(1, 16).realize(), out_dir=tmp_path / "m")
  before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
  def boom(path, tensors):
    path.write_bytes(b"partial")
    raise OSError("disk full")
  monkeypatch.setattr(webgpu, "write_safetensors", boom)
  with pytest.raises(OSError, match="disk full"): export_model(fn, Tensor.ones(1, 16).realize(), out_dir=tmp_path / "m")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
  assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before


def test_a_model_run_before_export_still_fits_the_binding_limit(tmp_path):
  x = Tensor(np.ones((1, 2, 4, 4), np.float32)).realize()
  ws = [Tensor(np.full((1, 2, 4, 4), i + 1, np.float32)).realize() for i in range(10)]
  fn = TinyJit(lambda x: sum((x * w for w in ws), x).relu())
  want = fn.fxn(x).numpy()  # scheduled (and cached by tinygrad) without any buffer limit: one kernel binding 12 buffers
  e = export_model(fn, x, out_dir=tmp_path / "m")
  assert e.plan["plans"]["f32"]["requires"]["maxStorageBuffersPerShaderStage"] <= 8
  np.testing.assert_allclose(fn.fxn(x).numpy(), want)


def test_a_failed_export_leaves_the_models_state_as_a_call_would(tmp_path):
  cache = Tensor.zeros(4).contiguous().realize()
  def step(x):
    cache.assign(cache + x).realize()
    return (cache.cast(dtypes.int64) * 2).cast(dtypes.float32)  # int64: the export refuses it after capturing
  with pytest.raises(ExportError, match="WGSL cannot express"): export_model(TinyJit(step), Tensor.ones(4).realize(), out_dir=tmp_path / "m")
  np.testing.assert_array_equal(cache.numpy(), [2, 2, 2, 2])  # the warm-up call and the captured call, both done
