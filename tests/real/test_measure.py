"""The real-programs measure itself (tinybounty/runner/real_programs/measure.py, harness.py), on the CPU alone: the
bound is PyTorch float32's error or, per element, the float64 runs' sensitivity to nudged module outputs and gradients,
each with the same 10x allowance, and it still rejects a wrong result."""
import torch

from tinybounty.runner.real_programs.harness import NUDGE, Program, nudge_gradients, trajectory
from tinybounty.runner.real_programs.measure import FACTOR, compare


def _program(optimizer) -> Program:
  # feature 0 is ~1e-6 of the others: its weight column's gradients are ~1e-6 of the tensor's largest, as where summands cancel
  x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
  x[:, 0] *= 1e-6
  y = torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(2))
  return Program("toy", build=lambda: torch.nn.Linear(8, 4), batch=lambda: {"x": x, "y": y},
                 loss=lambda m, b: (out := m(b["x"]), torch.nn.functional.cross_entropy(out, b["y"])), optimizer=optimizer)


def _sensitivity(optimizer) -> float:
  prog = _program(optimizer)
  torch.manual_seed(0)
  model, batch = prog.build(), prog.batch()
  ref = trajectory(prog, model, batch, "cpu", torch.float64)
  nudged = trajectory(prog, model, batch, "cpu", torch.float64, nudge=NUDGE)
  # step 0's gradients move only by the forward's rounding-sized nudges (the gradient nudge comes after them)
  g = ref["grads"]["weight"]
  assert 0 < (nudged["grads"]["weight"] - g).abs().max() <= 1e-6 * g.abs().max()
  return compare("weight", ref["weights"]["weight"], ref["weights"]["weight"], ref["weights"]["weight"], [nudged["weights"]["weight"]]).sensitivity


def test_adam_amplifies_rounding_in_near_zero_gradients_and_sgd_does_not():
  adam, sgd = _sensitivity(lambda p: torch.optim.AdamW(p, lr=1e-2)), _sensitivity(lambda p: torch.optim.SGD(p, lr=1e-2))
  # SGD moves each weight by lr * (one roundoff of the gradient's scale) per step: ~1e-10 here
  assert 0 < sgd < 5 * 1e-2 * NUDGE * 1.0 * 5
  # Adam divides by the element's own gradient magnitude: the same nudge on a ~1e-7 gradient shifts its step by percents of lr
  assert adam > 1e-6 and adam > 1e3 * sgd, (adam, sgd)


def test_the_bound_is_per_element_the_larger_of_pytorchs_error_and_the_sensitivity():
  ref = torch.zeros(3, dtype=torch.float64)
  torch32, nudged = ref + 1e-7, torch.tensor([1e-5, 0.0, 0.0], dtype=torch.float64)
  c = compare("w", torch.tensor([5e-5, 5e-7, 0.0], dtype=torch.float64), torch32, ref, [nudged, nudged / 2])
  assert c.torch == 1e-7 and c.sensitivity == 1e-5 and c.ratio == max(5e-5 / (FACTOR * 1e-5), 5e-7 / (FACTOR * 1e-7)) and c.ok
  assert not compare("w", torch.tensor([5e-5, 0.0, 0.0], dtype=torch.float64), torch32, ref).ok  # without nudged runs: 10x PyTorch's 1e-7 only
  assert not compare("w", torch.tensor([2e-4, 0.0, 0.0], dtype=torch.float64), torch32, ref, [nudged]).ok  # beyond 10x the sensitivity
  # an element the optimizer does not amplify keeps the plain bound although its neighbour is sensitive
  assert not compare("w", torch.tensor([0.0, 5e-5, 0.0], dtype=torch.float64), torch32, ref, [nudged]).ok


def test_a_wrong_update_still_fails_under_adam():
  prog = _program(lambda p: torch.optim.AdamW(p, lr=1e-2))
  torch.manual_seed(0)
  model, batch = prog.build(), prog.batch()
  ref, nudged = (trajectory(prog, model, batch, "cpu", torch.float64, nudge=n) for n in (0.0, NUDGE))
  cpu = trajectory(prog, model, batch, "cpu", torch.float32)
  good = compare("weight", cpu["weights"]["weight"], cpu["weights"]["weight"], ref["weights"]["weight"], [nudged["weights"]["weight"]])
  assert good.ok
  wrong = cpu["weights"]["weight"] * (1 + 1e-3)  # one part in a thousand off: a real bug's size, not rounding's
  assert not compare("weight", wrong, cpu["weights"]["weight"], ref["weights"]["weight"], [nudged["weights"]["weight"]]).ok


def test_the_nudge_leaves_exact_zeros_exact():
  # a gradient element with no nonzero summand (a dead unit, an unused row) is exactly zero in any precision: rounding
  # cannot move it, and a nudge there would let Adam step it by a fraction of lr and inflate the bound
  p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
  p.grad = torch.tensor([0.0, 1.0, 0.0, -1e-9], dtype=torch.float64)
  nudge_gradients([p], NUDGE, torch.Generator().manual_seed(0))
  assert p.grad[0] == 0 and p.grad[2] == 0 and abs(abs(p.grad[1]) - 1) == NUDGE and abs(abs(p.grad[3]) - 1e-9) > 0
