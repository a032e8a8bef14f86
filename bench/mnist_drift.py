"""Why beautiful_mnist's trajectory on tiny drifts from PyTorch's: per-step losses against float64, next to how far
float64 itself moves under float32-sized gradient nudges, and (--layers) the step-0 gradient at every layer's output
with the ReLU decisions that differ from float64's.

  PYTHONPATH=. DEV=CPU:LLVM python bench/mnist_drift.py [--steps 5] [--layers]
"""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

import tinybounty.torch_backend.compile  # noqa: F401 - registers the tiny device and backend
from tinybounty.runner.real_programs.harness import NUDGE, nudge_gradients
from tinybounty.torch_backend.beautiful_mnist import Model, batches, load, make_step


def losses(init: Model, data, idx: torch.Tensor, device: str, dtype: torch.dtype, nudge: float = 0.0, seed: int = 0,
           backend: str | None = None) -> torch.Tensor:
  """Per-step Adam (lr 1e-3) losses of a copy of `init`; `nudge` moves every gradient before each step (eager only)."""
  m = copy.deepcopy(init).to(device, dtype)
  opt = torch.optim.Adam(m.parameters(), lr=1e-3)
  gen, step, out = torch.Generator().manual_seed(seed), make_step(m, opt, backend) if backend else None, []
  for i in range(len(idx)):
    x, y = data.x_train[idx[i]].to(device, dtype), data.y_train[idx[i]].to(device)
    if step is not None:
      out.append(step(x, y).item())
      continue
    opt.zero_grad()
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    if nudge: nudge_gradients(list(m.parameters()), nudge, gen)
    opt.step()
    out.append(loss.item())
  return torch.tensor(out, dtype=torch.float64)


def layer_grads(init: Model, data, idx: torch.Tensor, device: str, dtype: torch.dtype) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
  """Step 0's output and output gradient of every layer (eager), on the host in float64."""
  m, outs = copy.deepcopy(init).to(device, dtype), []
  for i, layer in enumerate(m.layers):
    layer.register_forward_hook(lambda mod, inp, out, i=i: (out.retain_grad(), outs.append((i, out)), None)[-1])
  F.cross_entropy(m(data.x_train[idx[0]].to(device, dtype)), data.y_train[idx[0]].to(device)).backward()
  return {i: (o.detach().cpu().double(), o.grad.detach().cpu().double()) for i, o in outs}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--batch-size", type=int, default=32)
  ap.add_argument("--layers", action="store_true", help="also step 0's per-layer output gradients and ReLU decisions")
  args = ap.parse_args()
  data = load()
  idx = batches(len(data.x_train), args.batch_size, args.steps, 0)
  torch.manual_seed(0)
  init = Model()
  ref = losses(init, data, idx, "cpu", torch.float64)
  moved = torch.stack([(losses(init, data, idx, "cpu", torch.float64, NUDGE, s) - ref).abs() for s in (0, 1)]).amax(0)
  runs = {"PyTorch f32": losses(init, data, idx, "cpu", torch.float32), "tiny eager": losses(init, data, idx, "tiny", torch.float32),
          "tiny compiled": losses(init, data, idx, "tiny", torch.float32, backend="tiny")}
  print("| step | float64 loss | nudged f64 | " + " | ".join(runs) + " |\n|---|---|---|" + "---|" * len(runs))
  for i in range(args.steps):
    print(f"| {i} | {ref[i]:.6f} | {moved[i] / ref[i]:.1e} | " + " | ".join(f"{(v[i] - ref[i]).abs() / ref[i]:.1e}" for v in runs.values()) + " |")
  if not args.layers: return
  per = {name: layer_grads(init, data, idx, dev, dt) for name, dev, dt in (("f64", "cpu", torch.float64), ("f32", "cpu", torch.float32),
                                                                           ("tiny", "tiny", torch.float32))}
  rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
  print("\n| layer | output err f32 / tiny | output-gradient err f32 / tiny | ReLU inputs whose sign differs f32 / tiny |\n|---|---|---|---|")
  for i, (a, g) in per["f64"].items():
    flips = "" if not isinstance(init.layers[min(i + 1, len(init.layers) - 1)], torch.nn.ReLU) else \
      " / ".join(str(int(((per[n][i][0] > 0) != (a > 0)).sum())) for n in ("f32", "tiny"))
    print(f"| {i} {type(init.layers[i]).__name__} | {rel(per['f32'][i][0], a):.1e} / {rel(per['tiny'][i][0], a):.1e} | "
          f"{rel(per['f32'][i][1], g):.1e} / {rel(per['tiny'][i][1], g):.1e} | {flips} |")


if __name__ == "__main__":
  main()
