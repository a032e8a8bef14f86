import numpy as np
import pytest
from tinygrad import Tensor, nn
from tinygrad.helpers import Context
from tinygrad.nn.state import get_parameters

from tinybounty.cli import main
from tinybounty.validate import TARGETS, validate
from tinybounty.validate.corpus import CORPUS, run_case


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_every_out_of_bounds_program_is_caught(case, target):
  rep = run_case(case, target)
  assert rep.failures and not rep.errors, rep
  f = rep.failures[0]
  assert f.verdict == "oob" and "-> index" in f.counterexample and f.expr


@pytest.mark.parametrize("case", [c for c in CORPUS if c.corrupt], ids=lambda c: c.name)
def test_clean_twin_of_a_planted_bug_validates(case):
  rep = run_case(case, "CUDA", corrupted=False)
  assert rep.ok and rep.kernels and rep.count("proof") >= 1  # the gate is what keeps it in bounds: z3 had to prove it


def test_shrink_past_end_counterexample_names_the_variable():
  rep = run_case(CORPUS[0], "CPU")
  assert rep.failures[0].buffer_size == 3 and "a=" in rep.failures[0].counterexample


def _conv_train_step():
  Tensor.manual_seed(1)
  conv, lin = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 8 * 8, 5)
  params = get_parameters([conv, lin])
  Tensor.realize(*params)
  before = [p.numpy().copy() for p in params]
  x, y = Tensor.randn(2, 3, 8, 8).realize(), Tensor([1, 3]).realize()
  with Context(TRAINING=1):
    opt = nn.optim.SGD(params, lr=0.1)
    loss = lin(conv(x).relu().flatten(1)).sparse_categorical_crossentropy(y)
    opt.zero_grad()
    loss.backward()
    return loss, opt.schedule_step(), params, before


def test_train_step_validates_clean_on_every_target_and_then_runs():
  loss, updates, params, before = _conv_train_step()
  rep = validate([loss, *updates], "conv step")
  assert rep.ok, rep.summary()
  for t in rep.targets: assert t.kernels >= 5 and t.count("proof") >= 1  # padding: gated loads proven by z3
  assert rep.run_seconds is not None and np.isfinite(loss.numpy())
  assert any(not np.allclose(b, p.numpy()) for b, p in zip(before, params))  # the optimizer step ran


def test_out_of_bounds_schedule_is_reported_and_not_run():
  from tinygrad import Variable
  out = Tensor.rand(3).realize()[:Variable("a", 1, 10).bind(5)].sum()
  rep = validate([out], "bad", targets=("CPU",))
  assert not rep.ok and rep.run_seconds is None
  assert "OUT OF BOUNDS" in rep.summary() and "r0" in rep.summary()


def test_cli_corpus_exit_code(capsys):
  assert main(["validate", "--corpus", "--targets", "CPU"]) == 0
  out = capsys.readouterr().out
  assert out.count("CAUGHT") == len(CORPUS) and "MISSED" not in out


def test_cli_rejects_unknown_target(capsys):
  assert main(["validate", "--corpus", "--targets", "TPU"]) == 2
  assert "unknown target" in capsys.readouterr().err


def test_cli_validates_a_model_workload_and_writes_json(tmp_path, capsys):
  import json
  out = tmp_path / "bert.json"
  assert main(["validate", "bert_fwd", "--targets", "CPU,AMD", "--no-run", "--json", str(out)]) == 0
  (rep,) = json.loads(out.read_text())
  assert rep["ok"] and [t["target"] for t in rep["targets"]] == ["CPU", "AMD"] and all(t["kernels"] > 5 for t in rep["targets"])
  assert "bert_fwd (small): OK" in capsys.readouterr().out


def test_cli_names_an_unknown_workload(capsys):
  assert main(["validate", "nosuch"]) == 2
  assert "no workload 'nosuch'" in capsys.readouterr().err
