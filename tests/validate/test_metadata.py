import io
from contextlib import redirect_stdout

import pytest
import tinygrad.engine.realize as realize
import tinygrad.schedule as schedule
import tinygrad.uop.ops as ops
from tinygrad import Tensor
from tinygrad.engine.worker import _without_main
from tinygrad.helpers import Context

from tinybounty.validate import metadata


def _names(kernels, backward: bool | None = None) -> set[str]:
  return {m.name for k in kernels for m in k if backward is None or m.backward == backward}


def test_stock_0_14_kernels_carry_no_metadata():
  assert not metadata.installed()
  kernels = metadata.step_kernels(metadata.small_train_step())
  assert kernels and not any(kernels)


def test_every_kernel_of_a_train_step_names_its_ops(metadata_installed):
  kernels = metadata.step_kernels(metadata.small_train_step())
  assert all(kernels)
  assert {"conv2d", "relu", "linear", "batchnorm", "sparse_categorical_crossentropy"} <= _names(kernels, backward=False)
  assert {"conv2d", "relu", "linear"} <= _names(kernels, backward=True)


def test_sharded_step_names_the_same_ops(metadata_installed, two_cpus):
  single, sharded = metadata.step_kernels(metadata.small_train_step()), metadata.step_kernels(metadata.small_train_step(two_cpus))
  assert all(sharded) and len(sharded) > len(single)
  assert _names(single, backward=False) == _names(sharded, backward=False)
  assert _names(single) == _names(sharded)


def test_debug2_lines_show_the_ops(metadata_installed, two_cpus):
  out = io.StringIO()
  with redirect_stdout(out), Context(DEBUG=2):
    Tensor.realize(*metadata.small_train_step(two_cpus))
  lines = [ln for ln in out.getvalue().splitlines() if ln.startswith(("***", "\x1b[32m***")) and "copy" not in ln]
  assert lines and all("CPU:1" in ln or "CPU" in ln for ln in lines)
  assert sum("conv2d" in ln for ln in lines) >= 2 and any("relu bw" in ln for ln in lines)


def test_dataparallel_resnet_step_every_kernel_has_metadata(metadata_installed, two_cpus):
  single = metadata.step_kernels(metadata.resnet_train_step())
  sharded = metadata.step_kernels(metadata.resnet_train_step(two_cpus))
  assert all(single) and all(sharded)
  assert _names(single, backward=False) == _names(sharded, backward=False)
  assert _names(single) == _names(sharded)
  assert {"conv2d", "batchnorm", "max_pool2d", "relu", "linear"} <= _names(sharded, backward=False)


def _schedule_while_a_worker_spawns():
  # the compile pool hides __main__.__file__ while it spawns a worker, from another thread; do it here, on purpose
  a = Tensor.rand(4).realize()
  with Context(DEBUG=1): (a + 1).sum().realize((a * 2).contiguous())
  code = compile("(a + 3).sum().realize((a * 4).contiguous())", "<elsewhere>.py", "exec")
  with redirect_stdout(io.StringIO()), _without_main(), Context(DEBUG=1): exec(code, {"a": a})


def test_stock_scheduler_crashes_when_main_has_no_file():
  with pytest.raises(TypeError, match="is a built-in module"): _schedule_while_a_worker_spawns()


def test_installed_scheduler_survives_main_without_file(metadata_installed):
  _schedule_while_a_worker_spawns()


def test_uninstall_restores_every_patched_name():
  before = (ops.RewriteContext.__init__, ops.RewriteContext.pm_rewrite, ops.RewriteContext.cached_bpm_rewrite,
            schedule.get_kernel_graph, schedule.inspect, realize.get_call_name)
  metadata.install()
  metadata.install()  # idempotent
  assert schedule.inspect is not before[4] and realize.get_call_name is not before[5]
  metadata.uninstall()
  after = (ops.RewriteContext.__init__, ops.RewriteContext.pm_rewrite, ops.RewriteContext.cached_bpm_rewrite,
           schedule.get_kernel_graph, schedule.inspect, realize.get_call_name)
  assert all(a is b for a, b in zip(before, after)) and not metadata.installed()


def _relu_kernel_names() -> set[str]:
  return {m.name for k in metadata.step_kernels([(Tensor.randn(4, 4) + 1).relu()]) for m in k}


def test_an_op_that_raises_does_not_label_every_later_kernel():
  from tinygrad.tensor import _METADATA
  _METADATA.set(None)  # as in a fresh process
  with pytest.raises(ValueError): Tensor.ones(2, 2).reshape(3)
  assert _METADATA.get() is not None and _METADATA.get().name == "reshape"  # stock 0.14.0: left behind by the raising op
  metadata.install()
  try:
    assert _METADATA.get() is None
    with pytest.raises(ValueError): Tensor.ones(2, 2).reshape(3)
    assert _METADATA.get() is None
    assert "relu" in _relu_kernel_names() and "reshape" not in _relu_kernel_names()
  finally:
    metadata.uninstall()
  from tinygrad.tensor import _metadata_wrapper
  assert Tensor.relu.__code__ is _metadata_wrapper(lambda: None).__code__  # uninstall put tinygrad's wrappers back
