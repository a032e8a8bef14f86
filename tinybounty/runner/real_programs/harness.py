"""Run one program five ways (float64 CPU reference, the same twice with rounding-sized nudges to every module output and
gradient, float32 CPU, float32 on the tiny device) and measure it (measure.py).

A program is a model factory, a batch, and a loss: `trajectory` trains a copy of the model `steps` steps on one device
and dtype, keeping the step-0 outputs and gradients, every loss, and the weights after the steps; `check` compares the
tiny run and PyTorch's float32 run against the float64 one, tensor by tensor.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch

from tinybounty.runner.real_programs.measure import Report


@dataclass
class Program:
  """`build()` a float32 CPU model (seeded by the caller); `batch()` CPU tensors; `loss(model, batch)` -> (outputs, loss);
  `optimizer(params)`; `accumulate` micro-batches per step and `clip` (max grad norm) for nanoGPT-style loops; `autocast`
  a mixed-precision dtype;
  `generate(model, batch)` greedy tokens (None if the model does not generate); `evaluate(model, batch)` eval-mode outputs."""
  name: str
  build: Callable[[], torch.nn.Module]
  batch: Callable[[], dict]
  loss: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, torch.Tensor]]
  optimizer: Callable[[Any], torch.optim.Optimizer]
  steps: int = 5
  accumulate: int = 1
  clip: float | None = None
  train_mode: bool = False  # BatchNorm programs train in train mode; transformers without dropout in eval mode
  generate: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None
  evaluate: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None
  autocast: torch.dtype | None = None  # the forward and loss under torch.autocast(device, dtype) (float64 runs are not cast)


def _move(batch: dict, device: str, dtype: torch.dtype) -> dict:
  return {k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in batch.items()}


def _host(t: torch.Tensor) -> torch.Tensor: return t.detach().cpu().double().clone()  # a copy: a float64 CPU tensor would alias


NUDGE = 2.0 ** -24  # one float32 unit roundoff


def unit_roundoff(prog: Program) -> float:
  """The nudge for `prog`: one unit roundoff of the precision it computes in (its autocast dtype's, else float32's)."""
  return torch.finfo(prog.autocast).eps / 2 if prog.autocast else NUDGE


def nudge_gradients(params: list[torch.Tensor], size: float, gen: torch.Generator) -> None:
  """Move every gradient element by +-`size` of its tensor's largest value, signs drawn from `gen`: float32 rounding's
  reach in a gradient, whose errors come from sums over summands up to the tensor's scale."""
  for p in params:
    if p.grad is None or not p.grad.numel(): continue
    signs = torch.randint(0, 2, p.grad.shape, generator=gen).to(p.grad.dtype) * 2 - 1
    p.grad.add_(signs.to(p.grad.device) * (p.grad != 0) * (size * p.grad.abs().max()))  # an exact zero (no summand) stays exact


def nudge_activations(model: torch.nn.Module, size: float, gen: torch.Generator) -> None:
  """Forward hooks moving every leaf module's floating output by +-`size` of itself, the standard model of one rounding
  (fl(x) = x(1 + d), |d| <= u): through the layers after it, a ReLU or max-pool decision within rounding of its threshold
  may then go either way, as it may on any float32 device. The hooks live as long as `model`."""
  def hook(mod: torch.nn.Module, args: Any, out: Any) -> Any:
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or not out.numel(): return None
    signs = torch.randint(0, 2, out.shape, generator=gen).to(out.dtype) * 2 - 1
    return out + signs.to(out.device) * size * out.detach().abs()
  for m in model.modules():
    if next(m.children(), None) is None: m.register_forward_hook(hook)


def trajectory(prog: Program, model: torch.nn.Module, batch: dict, device: str, dtype: torch.dtype, nudge: float = 0.0,
               nudge_seed: int = 0) -> dict:
  """Train a copy of `model` on `device` in `dtype`: step-0 outputs and gradients, per-step losses, final weights, eval
  outputs. `nudge` > 0 moves every leaf module's output in the forward and every gradient before each optimizer step
  (after clipping), signs drawn from `nudge_seed`, for measure.py's sensitivity."""
  gen = torch.Generator().manual_seed(nudge_seed)
  m = copy.deepcopy(model).to(device, dtype)
  m.train(prog.train_mode)
  if nudge: nudge_activations(m, nudge, gen)
  opt = prog.optimizer(m.parameters())
  micro = [_move(b, device, dtype) for b in batch["micro"]] if "micro" in batch else [_move(batch, device, dtype)]
  out: dict = {"losses": []}
  for step in range(prog.steps):
    opt.zero_grad()
    total = None
    for b in micro[:prog.accumulate] if prog.accumulate > 1 else micro[:1]:
      with torch.autocast(device.split(":")[0], dtype=prog.autocast) if prog.autocast else contextlib.nullcontext():
        outputs, loss = prog.loss(m, b)
      (loss / prog.accumulate).backward()
      total = loss.detach() if total is None else total + loss.detach()
      if step == 0 and "outputs" not in out: out["outputs"] = _host(outputs)
    if prog.clip is not None: torch.nn.utils.clip_grad_norm_(m.parameters(), prog.clip)
    if step == 0: out["grads"] = {k: _host(p.grad) for k, p in m.named_parameters() if p.grad is not None}
    if nudge: nudge_gradients(list(m.parameters()), nudge, gen)
    opt.step()
    out["losses"].append(_host(total / prog.accumulate))
  out["weights"] = {k: _host(p) for k, p in m.named_parameters()}
  m.eval()
  with torch.no_grad():
    if prog.evaluate is not None: out["eval"] = _host(prog.evaluate(m, micro[0]))
  return out


def check(prog: Program, seed: int = 0) -> Report:
  """The tiny device against PyTorch CPU float32, both against float64 (imports the tiny device)."""
  import tinybounty.torch_backend  # noqa: F401 - registers "tiny"
  torch.manual_seed(seed)
  model, batch, u = prog.build().float(), prog.batch(), unit_roundoff(prog)
  runs = {name: trajectory(prog, model, batch, dev, dt, nudge, ns) for name, dev, dt, nudge, ns in
          (("ref", "cpu", torch.float64, 0.0, 0), ("nudged0", "cpu", torch.float64, u, 0), ("nudged1", "cpu", torch.float64, u, 1),
           ("cpu", "cpu", torch.float32, 0.0, 0), ("tiny", "tiny", torch.float32, 0.0, 0))}
  ref, cpu, tiny = runs["ref"], runs["cpu"], runs["tiny"]
  nudged = lambda key, k=None: [runs[n][key] if k is None else runs[n][key][k] for n in ("nudged0", "nudged1")]
  rep = Report(prog.name)
  rep.add("outputs", tiny["outputs"], cpu["outputs"], ref["outputs"], nudged("outputs"))
  for k in ref["grads"]: rep.add(f"grad:{k}", tiny["grads"][k], cpu["grads"][k], ref["grads"][k], nudged("grads", k))
  for i, (a, b, c) in enumerate(zip(tiny["losses"], cpu["losses"], ref["losses"])): rep.add(f"loss:{i}", a, b, c, [n[i] for n in nudged("losses")])
  for k in ref["weights"]: rep.add(f"weight:{k}", tiny["weights"][k], cpu["weights"][k], ref["weights"][k], nudged("weights", k))
  if "eval" in ref: rep.add("eval", tiny["eval"], cpu["eval"], ref["eval"], nudged("eval"))
  rep.facts["loss_tiny"], rep.facts["loss_cpu"] = tiny["losses"][-1].item(), cpu["losses"][-1].item()
  if prog.generate is not None:
    m32 = copy.deepcopy(model).eval()
    b32 = _move(batch, "cpu", torch.float32)
    with torch.no_grad():
      want = prog.generate(m32, b32)
      got = prog.generate(copy.deepcopy(model).eval().to("tiny"), _move(batch, "tiny", torch.float32)).cpu()
    rep.facts["generate_equal"] = bool(torch.equal(want, got))
  return rep
