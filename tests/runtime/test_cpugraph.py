"""CPUGraph replays must be bitwise identical to stock TinyJit, on the clang and the LLVM backends."""
import numpy as np
import pytest
from tinygrad import Tensor, TinyJit, nn
from tinygrad.helpers import Context
from tinygrad.nn.optim import Adam
from tinygrad.nn.state import get_parameters

from tinybounty.bounties.cpugraph_measure import Step, Workload, equal_outputs, gpt2_decode, init_params, mlp, randn
from tinybounty.models.gpt2 import GPT2Config


def cnn() -> Workload:
  def make() -> Step:
    c1, bn, c2, fc = init_params([nn.Conv2d(1, 4, 3), nn.BatchNorm(4), nn.Conv2d(4, 8, 3), nn.Linear(8 * 2 * 2, 10)])

    @TinyJit
    def step(x: Tensor) -> Tensor:
      x = bn(c1(x).relu()).max_pool2d()
      return fc(c2(x).relu().max_pool2d().flatten(1)).log_softmax().realize()
    return Step(step, lambda i: (randn(i, 2, 1, 14, 14),))
  return Workload("cnn", make)


class Block:
  def __init__(self, dim: int, heads: int):
    self.heads, self.ln1, self.ln2 = heads, nn.LayerNorm(dim), nn.LayerNorm(dim)
    self.qkv, self.proj, self.up, self.down = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

  def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    b, t, d = q.shape
    q, k, v = [x.reshape(b, -1, self.heads, d // self.heads).transpose(1, 2) for x in (q, k, v)]
    return q.scaled_dot_product_attention(k, v, is_causal=q.shape[2] > 1).transpose(1, 2).reshape(b, t, d)

  def __call__(self, x: Tensor) -> Tensor:
    x = x + self.proj(self.attend(*self.qkv(self.ln1(x)).chunk(3, dim=-1)))
    return x + self.down(self.up(self.ln2(x)).gelu())


def transformer_block() -> Workload:
  def make() -> Step:
    block = init_params(Block(32, 4))
    return Step(TinyJit(lambda x: block(x).realize()), lambda i: (randn(i, 2, 8, 32),))
  return Workload("transformer_block", make)


def train_step() -> Workload:
  def make() -> Step:
    model = init_params([nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 4)])
    params = get_parameters(model)
    opt = Adam(params, lr=1e-2)

    @TinyJit
    def step(x: Tensor, y: Tensor) -> Tensor:
      with Context(TRAINING=1):
        opt.zero_grad()
        loss = x.sequential([model[0], Tensor.relu, model[1], Tensor.relu, model[2]]).sparse_categorical_crossentropy(y).backward()
        opt.step()
        return loss.realize()
    targets = lambda i: Tensor(np.random.default_rng(i).integers(0, 4, 8, dtype=np.int32)).realize()
    return Step(step, lambda i: (randn(i, 8, 16), targets(i)), lambda: params)
  return Workload("train_step", make)


def inputs_written() -> Workload:
  """Slices of the inputs, and an input updated in place: TinyJit hands the graph new input buffers on every call."""
  def make() -> Step:
    def f(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
      a = (x[2:6] * 2).contiguous()
      y[1:3].assign(a[0:2] + 1)
      return (a.sum() + y.sum()).realize(), y
    return Step(TinyJit(f), lambda i: (randn(i, 8), randn(100 + i, 8)))
  return Workload("inputs_written", make)


@pytest.mark.parametrize("workload", [mlp(6, 32, 4), cnn(), transformer_block(), inputs_written()], ids=lambda w: w.name)
def test_forward_equal_to_stock(backend, workload):
  same, what = equal_outputs(workload, steps=3)
  assert same, what


def test_decode_loop_with_symbolic_start_pos_equal_to_stock(backend):
  cfg = GPT2Config.tiny()
  same, what = equal_outputs(gpt2_decode(cfg, "gpt2_tiny_decode", start=0, window=cfg.max_seq_len), steps=6)
  assert same, what


def test_training_weights_equal_to_stock_after_n_steps(backend):
  same, what = equal_outputs(train_step(), steps=5)
  assert same, what
