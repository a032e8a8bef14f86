"""The pipelined tensor-core matmul without a GPU: routing, install/uninstall, and NVRTC compiling it for sm_80/sm_90."""
import os

import pytest
from tinygrad import Device, Tensor, dtypes
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops

from tinybounty.runtime import gemm

needs_nvrtc = pytest.mark.skipif(not os.environ.get("NVRTC_PATH"), reason="NVRTC (pip extra `render`) is not installed")


def null(*shape, dtype=dtypes.half): return Tensor.empty(*shape, dtype=dtype, device="NULL")


def programs(t: Tensor) -> list[str]:
  return [u.src[0].arg.name for u in t.schedule_linear().toposort() if u.op is Ops.CALL and u.src[0].op is Ops.PROGRAM]


@pytest.fixture
def installed():
  gemm.install()
  yield
  gemm.uninstall()


@needs_nvrtc
def test_routes_eligible_products_only(installed):
  with Context(DEV="NULL:CUDA:sm_90"):
    assert programs(null(256, 512) @ null(512, 384)) == ["gemm_f16_256_384_512"]
    assert programs(null(256, 512, dtype=dtypes.bfloat16) @ null(512, 384, dtype=dtypes.bfloat16)) == ["gemm_bf16_256_384_512"]
    for a, b in [(null(200, 512), null(512, 384)), (null(256, 512, dtype=dtypes.float), null(512, 384, dtype=dtypes.float)),
                 (null(2, 256, 512), null(512, 384))]:
      assert not gemm.supported(a, b)
      assert programs(a @ b) == []
  with Context(DEV="NULL:CUDA:sm_75"):
    assert not gemm.supported(null(256, 512), null(512, 384))
  assert not gemm.supported(Tensor.empty(256, 512, dtype=dtypes.half), Tensor.empty(512, 384, dtype=dtypes.half))  # the CPU


def test_uninstall_restores_stock():
  gemm.install()
  gemm.uninstall()
  assert "dot" not in Tensor.__dict__
  with pytest.raises(ValueError, match="gemm needs"): gemm.matmul(Tensor.empty(100, 32, dtype=dtypes.half), Tensor.empty(32, 128, dtype=dtypes.half))


@needs_nvrtc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("dtype", [dtypes.half, dtypes.bfloat16], ids=lambda d: d.name)
def test_nvrtc_compiles_it(arch, dtype):
  with Context(DEV=f"NULL:CUDA:{arch}"):
    lib = Device["NULL"].renderer.compiler.compile(gemm.kernel_source("gemm_test", 256, 384, 512, dtype))
  assert lib[:4] == b"\x7fELF"
