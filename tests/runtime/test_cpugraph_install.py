"""install()/uninstall(), the CPUGRAPH switch, fallback counting and the entry's toolchain."""
import pytest
from tinygrad import Device, TinyJit, dtypes
from tinygrad.runtime.ops_cpu import CPUDevice

from tinybounty.bounties.cpugraph_measure import Step, Workload, capture, equal_outputs, init_params, mlp, randn, replay
from tinybounty.runtime import cpugraph
from tinybounty.runtime.cpugraph_entry import Launch, render_c, render_llvm


def threads_and_copy() -> Workload:
  """Matmuls big enough to run on several core_id threads, then a copy to a second CPU device and more kernels there."""
  def make() -> Step:
    w = init_params([randn(0, 256, 256)])[0]
    f = TinyJit(lambda x: ((((x @ w).relu() @ w).contiguous().to("CPU:1") * 2 + 1).sum(axis=1).contiguous().softmax()).realize())
    return Step(f, lambda i: (randn(i, 64, 256),))
  return Workload("threads_and_copy", make)


def test_install_is_reversible_and_uninstall_restores_stock():
  stock_init = CPUDevice.__init__
  assert cpugraph.install() and cpugraph.installed()
  assert Device["CPU"].graph is cpugraph.CPUGraph and Device["CPU:2"].graph is cpugraph.CPUGraph  # CPU:2 opens after install
  assert cpugraph.install()  # twice is harmless
  cpugraph.uninstall()
  assert CPUDevice.__init__ is stock_init and not cpugraph.installed()
  assert Device["CPU"].graph is None and Device["CPU:2"].graph is None and Device["CPU:3"].graph is None
  _, counts = replay(mlp(3, 8, 2), 3, graph=False)
  assert counts == {"lone": 3}, "a JIT captured after uninstall must run every kernel the stock way"


def test_env_switch_turns_install_off(monkeypatch):
  monkeypatch.setenv(cpugraph.ENV_VAR, "0")
  assert not cpugraph.install() and not cpugraph.installed() and Device["CPU"].graph is None


def test_fallbacks_are_counted_and_threaded_kernels_match_stock(backend):
  same, what = equal_outputs(threads_and_copy(), steps=3)
  assert same, what
  _, counts = replay(threads_and_copy(), 2, graph=True)
  assert counts == {"graphs": 2, "graphed": 5, "copy": 1}, "the copy to CPU:1 splits the step into two graphs and runs on its own"


def test_llvm_backend_builds_its_entry_with_llvm(backend):
  w = mlp(3, 8, 2)
  with pytest.raises(ValueError, match="not captured"): cpugraph.fallbacks(TinyJit(lambda x: x))
  step = capture(w, graph=True)
  step.jit(*step.args(2))
  assert [g.toolchain for g in cpugraph.graphs(step.jit)] == [{"clang": "CLANG", "llvm": "LLVM"}[backend]]


def test_entry_reads_each_launch_from_its_table_words():
  launches = [Launch((None, None)), Launch((None, None, dtypes.int, dtypes.uint32), threads=4, core_id=2)]
  c = render_c(launches)
  assert "  ((fn0)a[0])((void*)a[1], (void*)a[2]);" in c
  assert "  for (int t = 0; t < 4; t++) ((fn1)a[3])((void*)a[4], (void*)a[5], t, (unsigned int)a[7]);" in c
  assert "typedef void (*fn1)(void*, void*, signed int, unsigned int);" in c
  ll = render_llvm(launches)
  assert "call void %f1(ptr %x1_0, ptr %x1_1, i32 %t1, i32 %x1_3)" in ll and "icmp slt i32 %n1, 4" in ll
