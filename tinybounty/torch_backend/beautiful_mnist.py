"""beautiful_mnist in PyTorch: tinygrad's examples/beautiful_mnist.py model, trained with Adam, on any torch device.

  python -m tinybounty.torch_backend.beautiful_mnist --device tiny --compile --steps 70 --plot mnist.png
  python -m tinybounty.torch_backend.beautiful_mnist --data ~/mnist --device cpu    # the real MNIST IDX files

Without --data it trains on an MNIST-format set written from scikit-learn's digits (tinybounty.data). Initial weights
(torch.manual_seed on the CPU) and batches (a seeded CPU generator) depend only on --seed, never on the device, so runs
on different devices or backends can be compared step for step.
"""
from __future__ import annotations

import argparse
import copy
import pathlib
import tempfile
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from tinybounty.data import load_mnist, write_mnist_like


class Model(nn.Module):
  """conv5x5-conv5x5-BN-pool-conv3x3-conv3x3-BN-pool-linear, as tinygrad's beautiful_mnist."""
  def __init__(self):
    super().__init__()
    self.layers = nn.Sequential(
      nn.Conv2d(1, 32, 5), nn.ReLU(), nn.Conv2d(32, 32, 5), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
      nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
      nn.Flatten(1), nn.Linear(576, 10))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.layers(x)


@dataclass
class MNIST:
  x_train: torch.Tensor  # N x 1 x 28 x 28 float32 in [0, 1]
  y_train: torch.Tensor  # N int64
  x_test: torch.Tensor
  y_test: torch.Tensor


def load(data_dir: str | pathlib.Path | None = None) -> MNIST:
  """MNIST from a directory of IDX files; without one, the MNIST-format digits set (written to a temporary directory)."""
  if data_dir is None:
    with tempfile.TemporaryDirectory() as d: arrays = load_mnist(write_mnist_like(d))
  else: arrays = load_mnist(data_dir)
  xs, ys, xt, yt = (torch.from_numpy(a.copy()) for a in arrays)
  return MNIST(xs.float().unsqueeze(1) / 255, ys.long(), xt.float().unsqueeze(1) / 255, yt.long())


@dataclass
class History:
  steps: list[int] = field(default_factory=list)
  losses: list[float] = field(default_factory=list)
  step_seconds: list[float] = field(default_factory=list)
  eval_steps: list[int] = field(default_factory=list)
  accuracies: list[float] = field(default_factory=list)  # percent on the test set


def batches(n: int, batch_size: int, steps: int, seed: int) -> torch.Tensor:
  """steps x batch_size sample indices from a seeded CPU generator: the same on every device."""
  return torch.randint(0, n, (steps, batch_size), generator=torch.Generator().manual_seed(seed))


def make_step(model: nn.Module, opt: torch.optim.Optimizer, backend: str | None):
  """One training step (forward, loss, backward, Adam); with a backend, model and optimizer step are torch.compiled."""
  fwd = torch.compile(model, backend=backend) if backend else model
  opt_step = torch.compile(opt.step, backend=backend) if backend else opt.step

  def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    opt.zero_grad(set_to_none=False)
    loss = F.cross_entropy(fwd(x), y)
    loss.backward()
    opt_step()
    return loss
  return step


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
  model.eval()
  correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()) for i in range(0, len(x), batch_size))
  model.train()
  return 100.0 * correct / len(x)


def train(data: MNIST, steps: int = 70, device: str = "cpu", backend: str | None = None, batch_size: int = 512, lr: float = 1e-3,
          seed: int = 0, eval_every: int = 0, progress: bool = True) -> tuple[nn.Module, History]:
  """Train a fresh Model (initial weights from `seed`) on `device`; `backend` is a torch.compile backend name or None for eager.

  Losses are read back after every step (that is the synchronisation point of each timed step); test accuracy is
  measured every `eval_every` steps (0: only at the end).
  """
  torch.manual_seed(seed)
  model = Model().to(device)
  opt = torch.optim.Adam(model.parameters(), lr=lr)
  step = make_step(model, opt, backend)
  x_train, y_train = data.x_train.to(device), data.y_train.to(device)
  x_test, y_test = data.x_test.to(device), data.y_test.to(device)
  hist = History()
  bar = tqdm(batches(len(x_train), batch_size, steps, seed), desc=f"mnist {device}{' ' + backend if backend else ''}", disable=not progress)
  for i, idx in enumerate(bar, 1):
    idx = idx.to(device)
    st = time.perf_counter()
    loss = step(x_train[idx], y_train[idx]).item()
    hist.step_seconds.append(time.perf_counter() - st)
    hist.steps.append(i)
    hist.losses.append(loss)
    if i == steps or (eval_every and i % eval_every == 0):
      hist.eval_steps.append(i)
      hist.accuracies.append(accuracy(model, x_test, y_test))
    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{hist.accuracies[-1]:.1f}%" if hist.accuracies else "-")
  return model, hist


@dataclass
class ForcedStep:
  """One step taken from PyTorch float32's state, by tiny and by PyTorch float32, against a float64 step from that state:
  relative loss errors, and parameter errors relative to the float64 step's update (the step's own size)."""
  step: int
  loss: float
  loss_torch32: float
  update: float
  update_torch32: float
  gain: float           # the step's decrease of this batch's float64 loss, relative error against the float64 step's
  gain_torch32: float


def _flat(model: nn.Module) -> torch.Tensor:
  return torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for p in model.parameters()])


@torch.no_grad()
def _load(dst: nn.Module, dst_opt: torch.optim.Optimizer, src: nn.Module, src_opt: torch.optim.Optimizer) -> None:
  """Copy src's weights, buffers and Adam state into dst's own tensors (in place: compiled code keeps its inputs)."""
  for t, v in zip(dst.state_dict().values(), src.state_dict().values()): t.copy_(v)
  for pd, ps in zip(dst.parameters(), src.parameters()):
    for k, v in src_opt.state.get(ps, {}).items(): dst_opt.state[pd][k].copy_(v)


@torch.no_grad()
def _loss64(model: nn.Module, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
  """The float64 training-mode loss of `model` (a float64 CPU copy) with its parameters set to `flat`."""
  torch.nn.utils.vector_to_parameters(flat, model.parameters())
  return F.cross_entropy(model(x.double()), y).item()


def forced_steps(data: MNIST, steps: int, at: set[int], device: str = "tiny", backend: str | None = "tiny", batch_size: int = 512,
                 lr: float = 1e-3, seed: int = 0, progress: bool = True) -> list[ForcedStep]:
  """Teacher-forced steps: PyTorch float32 on the CPU trains `steps` steps as `train` does; before each step in `at`,
  `device` (with `backend`) and a float64 CPU copy are set to its exact state and take the same step.

  A free-running comparison of two float32 trainings tests chaos as much as code: one ReLU or max-pool tie decided
  the other way by rounding is a different trajectory a few steps later. From the same state every time, each step's
  error stays what one step's rounding makes, and PyTorch float32's own error against float64 says how large that is.
  Steps in `at` must include the first (the optimizers' state is made there)."""
  if 1 not in at: raise ValueError(f"forced steps need step 1 in `at` (Adam's state is created there), got {sorted(at)}")
  torch.manual_seed(seed)
  ref = Model()
  models = {"ref": ref, "hi": copy.deepcopy(ref).double(), "dut": copy.deepcopy(ref).to(device)}
  opts = {k: torch.optim.Adam(m.parameters(), lr=lr) for k, m in models.items()}
  step = {k: make_step(m, opts[k], backend if k == "dut" else None) for k, m in models.items()}
  probe, out = copy.deepcopy(models["hi"]), []
  bar = tqdm(enumerate(batches(len(data.x_train), batch_size, steps, seed), 1), total=steps, desc=f"forced steps {device}", disable=not progress)
  for i, idx in bar:
    x, y = data.x_train[idx], data.y_train[idx]
    if i not in at:
      step["ref"](x, y)
      continue
    for k in ("hi", "dut"):
      if i > 1: _load(models[k], opts[k], ref, opts["ref"])
    before = _flat(ref)
    l64 = step["hi"](x.double(), y).item()
    l32 = step["ref"](x, y).item()
    lt = step["dut"](x.to(device), y.to(device)).item()
    p64, pt, p32 = _flat(models["hi"]), _flat(models["dut"]), _flat(ref)
    size = float((p64 - before).norm())
    g64, gt, g32 = (l64 - _loss64(probe, p, x, y) for p in (p64, pt, p32))
    out.append(ForcedStep(i, abs(lt - l64) / abs(l64), abs(l32 - l64) / abs(l64), float((pt - p64).norm()) / size,
                          float((p32 - p64).norm()) / size, abs(gt - g64) / abs(g64), abs(g32 - g64) / abs(g64)))
  return out


def plot(hist: History, path: str | pathlib.Path, title: str) -> None:
  """Save the loss and test-accuracy curves."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(hist.steps, hist.losses, label="train loss", color="tab:blue")
  ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_yscale("log")
  acc = ax.twinx()
  acc.plot(hist.eval_steps, hist.accuracies, "o-", label="test accuracy", color="tab:orange")
  acc.set_ylabel("test accuracy (%)")
  fig.legend(loc="center right"), ax.set_title(title), fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m tinybounty.torch_backend.beautiful_mnist", description=__doc__.split("\n")[0])
  p.add_argument("--data", help="directory with MNIST's IDX files (gzipped or not); default: MNIST-format digits from scikit-learn")
  p.add_argument("--device", default="tiny", help="torch device: tiny (tinygrad, DEV selects its backend), cpu, cuda (default tiny)")
  p.add_argument("--compile", nargs="?", const="tiny", metavar="BACKEND", help="torch.compile the step (default backend: tiny)")
  p.add_argument("--steps", type=int, default=70)
  p.add_argument("--batch-size", type=int, default=512)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--eval-every", type=int, default=10)
  p.add_argument("--plot", metavar="PNG", help="save the loss and accuracy curves here")
  args = p.parse_args(argv)
  if args.device == "tiny" or args.compile == "tiny":
    import tinybounty.torch_backend.compile  # noqa: F401 - registers the tiny device and the "tiny" compile backend
  _, hist = train(load(args.data), args.steps, args.device, args.compile, args.batch_size, args.lr, args.seed, args.eval_every)
  times = sorted(hist.step_seconds[1:] or hist.step_seconds)
  print(f"test accuracy {hist.accuracies[-1]:.2f}% after {args.steps} steps; final loss {hist.losses[-1]:.4f}; "
        f"step time median {times[len(times) // 2] * 1e3:.1f} ms (first step {hist.step_seconds[0]:.2f} s)")
  if args.plot:
    plot(hist, args.plot, f"beautiful_mnist on {args.device}" + (f", torch.compile({args.compile})" if args.compile else ""))
    print(f"plot saved to {args.plot}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
