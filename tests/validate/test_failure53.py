import pytest
from tinygrad.codegen.opt import KernelOptError

from tinybounty.validate import failure53
from tinybounty.validate.targets import nvrtc_path


def test_cuda_source_has_the_grouped_reduce():
  src = failure53.render("CUDA")
  assert "__shared__" in src and "__syncthreads()" in src and "threadIdx.x" in src
  assert "r_1024_16_3125" in src  # 1024 rows, the 50,000 reduce split 16 x 3125 by GROUPTOP


@pytest.mark.skipif(nvrtc_path() is None, reason="needs NVRTC (pip nvidia-cuda-nvrtc-cu12)")
def test_cuda_source_compiles_with_nvrtc():
  assert len(failure53.compile_cuda(failure53.render("CUDA"))) > 1000


def test_cpu_computes_the_gather():
  assert failure53.run("CPU", opts=None) == 0


def test_stock_one_hot_against_arange_collapses_so_grouptop_has_no_axis():
  from tinygrad import Tensor, dtypes
  from tinygrad.uop.ops import Ops

  from tinybounty.validate.targets import lower, renderer
  v, i = failure53.inputs("CPU")
  out = failure53.one_hot_gather(Tensor(v).realize(), Tensor(i).realize(), Tensor.arange(failure53.N_VALUES, dtype=dtypes.int32))
  ast = next(c.src[0] for c in out.linear_with_vars()[0].src if c.src[0].op is Ops.SINK)
  from dataclasses import replace
  with pytest.raises(KernelOptError):
    lower(ast.replace(arg=replace(ast.arg, opts_to_apply=failure53.OPTS)), renderer("CUDA"))


@pytest.mark.gpu
def test_failure53_runs_on_cuda_with_grouptop():
  assert failure53.run("CUDA") == 0
