"""Process replay in CI: the small corpus, stock vs ours, byte-identical kernels and schedule on every renderer."""
import pytest

from tinybounty.engine.replay import TARGETS, Kernel, first_difference, replay

# the CI subset: every renderer and every model family once, at the "small" sizes (the CLI runs the whole corpus)
CI_SUBSET = {"clang": ["bert_fwd", "llama_decode"], "cuda": ["resnet50_fwd", "gpt2_fwd"], "amd": ["mnist_train_step"]}


@pytest.mark.slow
@pytest.mark.parametrize("target", list(CI_SUBSET))
def test_replay_is_byte_identical(target):
  rows = replay([target], CI_SUBSET[target], "small")[target]
  assert [r["workload"] for r in rows] == CI_SUBSET[target]
  for r in rows:
    assert r["kernels"] > 0, f"{target} {r['workload']}: nothing was rendered"
    assert r["identical"], f"{target} {r['workload']}: {r['difference']}"
    assert r["engine"] == "native", f"{target} {r['workload']}: the C loop did not run"


def test_first_difference_names_what_differs():
  a = [Kernel("E_4", "void E_4() {}", ((0, "dtypes.float", 4),)), Kernel("COPY", "", ((0, "dtypes.float", 4), (1, "dtypes.float", 4)))]
  assert first_difference(a, list(a)) is None
  assert first_difference(a, a[:1]) == "2 calls with stock, 1 with ours"
  assert first_difference(a, [Kernel("E_4", "void E_4() { }", a[0].buffers), a[1]]) == "call 0 (E_4): different source"
  assert first_difference(a, [a[0], Kernel("COPY", "", a[1].buffers[::-1])]) == "call 1 (COPY): different buffers"


def test_unknown_target_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown targets or workloads"): replay(["metal"], ["gpt2_fwd"], "small")
  assert set(CI_SUBSET) == set(TARGETS)
