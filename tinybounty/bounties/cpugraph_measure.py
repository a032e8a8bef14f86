"""Stock TinyJit vs CPUGraph on the same jitted steps: exact equality and same-run timing.

Used by bench/cpugraph.py, the tests and registry check 19. A step is built twice from the same seed, once captured
by stock TinyJit and once with CPUGraph installed; both replay the same inputs.
"""
from __future__ import annotations

import collections
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import numpy as np
from tinygrad import Tensor, TinyJit, UOp, dtypes, nn
from tinygrad.dtype import _to_np_dtype
from tinygrad.helpers import Context
from tinygrad.nn.optim import Adam
from tinygrad.nn.state import get_parameters, get_state_dict

from tinybounty.models.gpt2 import GPT2, GPT2Config
from tinybounty.models.mnist import BeautifulMNIST
from tinybounty.runtime import cpugraph

M = TypeVar("M")


@dataclass(frozen=True)
class Step:
  """A jitted step: `jit(*args(i))` runs replay i; `state()` gives tensors to compare after the replays (e.g. weights)."""
  jit: Callable
  args: Callable[[int], tuple]
  state: Callable[[], list[Tensor]] = lambda: []


@dataclass(frozen=True)
class Workload:
  """A named step builder. `build()` creates the model (seeded by the caller) and its TinyJit."""
  name: str
  build: Callable[[], Step] = field(repr=False)


@contextlib.contextmanager
def graph_mode(graph: bool) -> Iterator[None]:
  """CPUGraph installed (True) or not (False) inside the block; the previous state comes back after it."""
  was = cpugraph.installed()
  if graph and not cpugraph.install(): raise RuntimeError(f"CPUGraph is disabled by {cpugraph.ENV_VAR}=0")
  if not graph: cpugraph.uninstall()
  try: yield
  finally: (cpugraph.install if was else cpugraph.uninstall)()


def _outputs(ret) -> list[Tensor]: return list(ret) if isinstance(ret, (tuple, list)) else [ret]


def capture(w: Workload, graph: bool) -> Step:
  """Build the step with CPUGraph on or off, and capture its JIT (two warm-up calls, on args(0) and args(1))."""
  with graph_mode(graph):
    Tensor.manual_seed(0)
    step = w.build()
    for i in range(2): step.jit(*step.args(i))
  return step


def replay(w: Workload, steps: int, graph: bool) -> tuple[list[np.ndarray], collections.Counter[str]]:
  """Run a fresh build for `steps` steps; every output of every step and the final state, and the fallback counts."""
  with graph_mode(graph):
    Tensor.manual_seed(0)
    step = w.build()
    outs = [o.numpy() for i in range(steps) for o in _outputs(step.jit(*step.args(i)))]
    counts = cpugraph.fallbacks(step.jit)
  return outs + [t.numpy() for t in step.state()], counts


def equal_outputs(w: Workload, steps: int = 4) -> tuple[bool, str]:
  """Whether CPUGraph's outputs are bitwise equal to stock TinyJit's over `steps` steps; a line saying what was compared."""
  stock, _ = replay(w, steps, graph=False)
  graphed, counts = replay(w, steps, graph=True)
  if counts["graphs"] == 0: return False, f"{w.name}: CPUGraph built no graph ({dict(counts)})"
  if len(stock) != len(graphed): return False, f"{w.name}: {len(graphed)} arrays with CPUGraph, {len(stock)} stock"
  bad = [i for i, (a, b) in enumerate(zip(stock, graphed)) if a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=True)]
  return not bad, f"{w.name}: {len(stock)} arrays over {steps} steps " + (f"DIFFER at {bad}" if bad else "identical") + f"; {dict(counts)}"


@dataclass(frozen=True)
class Timing:
  """Per-step wall time in µs of stock TinyJit and CPUGraph, measured interleaved in one process."""
  name: str
  stock_us: list[float]
  graph_us: list[float]
  counts: dict[str, int]

  def median_us(self, which: str) -> float: return statistics.median(self.stock_us if which == "stock" else self.graph_us)

  @property
  def ratio(self) -> float: return self.median_us("stock") / self.median_us("graph")

  def line(self) -> str:
    s, g = self.stock_us, self.graph_us
    return (f"{self.name}: stock min {min(s):.0f} med {self.median_us('stock'):.0f} µs | cpugraph min {min(g):.0f} "
            f"med {self.median_us('graph'):.0f} µs | {self.ratio:.2f}x (median) {min(s) / min(g):.2f}x (min) | {self.counts}")


def _time_calls(step: Step, first: int, n: int) -> list[float]:
  ts = []
  for i in range(first, first + n):
    args = step.args(i)
    st = time.perf_counter()
    step.jit(*args)
    ts.append((time.perf_counter() - st) * 1e6)
  return ts


def time_workload(w: Workload, iters: int = 20, repeats: int = 5) -> Timing:
  """Both builds captured, then `repeats` rounds of `iters` steps each, stock and CPUGraph alternating; one sample per step."""
  stock, graphed = capture(w, graph=False), capture(w, graph=True)
  s_us: list[float] = []
  g_us: list[float] = []
  for r in range(repeats):
    s_us += _time_calls(stock, 2 + r * iters, iters)
    g_us += _time_calls(graphed, 2 + r * iters, iters)
  return Timing(w.name, s_us, g_us, dict(cpugraph.fallbacks(graphed.jit)))


def init_params(model: M, seed: int = 0) -> M:
  """Give every float tensor of `model` seeded values from numpy (no random kernels to compile); returns the model.

  Tensors of 2+ dims get U(-1, 1)/sqrt(fan_in), 1-D ones (biases, norms, running stats) U(0.5, 1.5).
  """
  rng = np.random.default_rng(seed)
  for t in get_state_dict(model).values():
    if not dtypes.is_float(t.dtype): continue
    fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else 0
    vals = rng.uniform(-1, 1, t.shape) / np.sqrt(fan_in) if fan_in else rng.uniform(0.5, 1.5, t.shape)
    t.replace(Tensor(vals.astype(_to_np_dtype(t.dtype)), device=t.device)).realize()
  return model


def randn(i: int, *shape: int) -> Tensor:
  """A realized float32 input, seeded by `i` (one per replay)."""
  return Tensor(np.random.default_rng(i).standard_normal(shape, dtype=np.float32)).realize()


def mlp(layers: int = 24, width: int = 64, batch: int = 8) -> Workload:
  """A ReLU MLP forward step: `layers` Linear(width, width), batch `batch` (the issue's example: 24 x 64, batch 8)."""
  def make() -> Step:
    lins = init_params([nn.Linear(width, width) for _ in range(layers)])

    @TinyJit
    def step(x: Tensor) -> Tensor:
      for lin in lins: x = lin(x).relu()
      return x.realize()
    return Step(step, lambda i: (randn(i, batch, width),))
  return Workload(f"mlp{layers}x{width}_b{batch}", make)


def gpt2_decode(cfg: GPT2Config | None = None, name: str = "gpt2_small_decode", start: int = 60, window: int = 8) -> Workload:
  """One-token GPT-2 decode with the KV cache at a symbolic start_pos (GPT-2 small by default).

  Replay i decodes at position start + i % window: the default keeps the cost per step flat for timing; start=0 and
  window=max_seq_len is a plain decode loop.
  """
  cfg = cfg or GPT2Config.small()
  if not 0 <= start and start + window <= cfg.max_seq_len: raise ValueError(f"positions {start}..{start + window - 1} exceed {cfg.max_seq_len=}")

  def make() -> Step:
    model = init_params(GPT2(cfg))
    start_pos = UOp.variable("start_pos", 0, cfg.max_seq_len - 1)

    @TinyJit
    def step(tokens: Tensor, pos: UOp) -> Tensor:
      logits = model(tokens, pos)
      Tensor.realize(logits, *model.kv_caches())
      return logits
    tokens = lambda i: Tensor([[i * 7919 % cfg.vocab_size]], dtype=dtypes.int32).realize()
    return Step(step, lambda i: (tokens(i), start_pos.bind(start + i % window)), model.kv_caches)
  return Workload(name, make)


def gpt2_decode_narrow() -> Workload:
  """GPT-2 small's decode step graph (12 layers, 12 heads, same kernels) at width 96 and vocab 1024: the overhead-bound case."""
  return gpt2_decode(GPT2Config(dim=96, n_layers=12, n_heads=12, vocab_size=1024, max_seq_len=128), "gpt2_narrow_decode")


def mnist_train(batch: int = 512) -> Workload:
  """A beautiful_mnist Adam training step at `batch` (512 in tinygrad's example); the state compared is every weight and BN stat."""
  def make() -> Step:
    model = init_params(BeautifulMNIST())
    opt = Adam(get_parameters(model))

    @TinyJit
    def step(x: Tensor, y: Tensor) -> Tensor:
      with Context(TRAINING=1):
        opt.zero_grad()
        loss = model(x).sparse_categorical_crossentropy(y).backward()
        opt.step()
        return loss.realize()
    labels = lambda i: Tensor(np.random.default_rng(i).integers(0, 10, batch, dtype=np.int32)).realize()
    return Step(step, lambda i: (randn(i, batch, 1, 28, 28), labels(i)), lambda: list(get_state_dict(model).values()))
  return Workload(f"mnist_train_b{batch}", make)
