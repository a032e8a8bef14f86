"""Named workloads: a model, deterministic random weights and inputs, and the unrealized tensors of one step.

`WORKLOADS[name].build(size, seed)` returns the tensors whose schedule a tool captures (`Tensor.linear_with_vars(*outs)` in tinygrad 0.14) or runs
(`Tensor.realize(*outs)`). Weights and inputs are realized before returning, so the outputs' schedule is exactly one step:
a forward, a decode step (KV-cache writes included), or a training step (forward, loss, backward and optimizer update:
the loss first, then every updated parameter, optimizer state and BatchNorm buffer). "full" is the real size, "small"
shrinks widths and batch so scheduling and running on a CPU take seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tinygrad import Context, Tensor, UOp
from tinygrad.nn.optim import SGD, Adam
from tinygrad.nn.state import get_parameters

from tinybounty.models.bert import BertConfig, BertEncoder
from tinybounty.models.gpt2 import GPT2, GPT2Config
from tinybounty.models.llama import Llama, LlamaConfig
from tinybounty.models.mnist import BeautifulMNIST
from tinybounty.models.resnet import ResNet

SIZES = ("small", "full")


@dataclass(frozen=True)
class Workload:
  """One named step of one model; `build(size, seed)` -> its unrealized output tensors."""
  name: str
  description: str
  make: Callable[[bool], list[Tensor]] = lambda full: []

  def build(self, size: str = "small", seed: int = 0) -> list[Tensor]:
    if size not in SIZES: raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    Tensor.manual_seed(seed)
    return self.make(size == "full")


def _realized(model):
  Tensor.realize(*get_parameters(model))
  return model


def _train_step(model, loss_fn: Callable[[], Tensor], opt_cls=Adam, lr: float = 1e-3) -> list[Tensor]:
  opt = opt_cls([p for p in get_parameters(model) if p.is_param], lr=lr)
  Tensor.realize(*get_parameters(opt))
  with Context(TRAINING=1):
    opt.zero_grad()
    loss = loss_fn()
    loss.backward()
    return [loss, *opt.schedule_step()]


def _resnet50_fwd(full: bool) -> list[Tensor]:
  model = _realized(ResNet(50, 1000, 64) if full else ResNet(50, 10, 8))
  x = Tensor.randn(64, 3, 224, 224) if full else Tensor.randn(2, 3, 32, 32)
  return [model(x.realize())]


def _resnet18_train_step(full: bool) -> list[Tensor]:
  model = _realized(ResNet(18, 1000, 64) if full else ResNet(18, 10, 8))
  x, y = (Tensor.randn(64, 3, 224, 224), Tensor.randint(64, high=1000)) if full else (Tensor.randn(2, 3, 32, 32), Tensor.randint(2, high=10))
  Tensor.realize(x, y)
  return _train_step(model, lambda: model(x).sparse_categorical_crossentropy(y), SGD, lr=0.01)


def _gpt2(full: bool, batch_full: int = 4) -> tuple[GPT2, Tensor]:
  cfg, B, T = (GPT2Config.small(), batch_full, 64) if full else (GPT2Config.tiny(), 2, 16)
  return _realized(GPT2(cfg)), Tensor.randint(B, T, high=cfg.vocab_size).realize()


def _gpt2_fwd(full: bool) -> list[Tensor]:
  model, tokens = _gpt2(full)
  return [model(tokens, use_cache=False)]


def _gpt2_train_step(full: bool) -> list[Tensor]:
  model, tokens = _gpt2(full)
  return _train_step(model, lambda: model(tokens[:, :-1], use_cache=False).sparse_categorical_crossentropy(tokens[:, 1:]))


def _decode_step(model: GPT2 | Llama, tokens: Tensor) -> list[Tensor]:
  """Prefill the cache with all but the last token (realized), then return one decode step at a symbolic position."""
  n = tokens.shape[1] - 1
  Tensor.realize(model(tokens[:, :n], 0), *model.kv_caches())
  start_pos = UOp.variable("start_pos", 1, model.cfg.max_seq_len - 1).bind(n)
  return [model(tokens[:, n:], start_pos), *model.kv_caches()]


def _gpt2_decode(full: bool) -> list[Tensor]:
  return _decode_step(*_gpt2(full, batch_full=1))


def _llama_decode(full: bool) -> list[Tensor]:
  cfg = LlamaConfig.small() if full else LlamaConfig.tiny()
  return _decode_step(_realized(Llama(cfg)), Tensor.randint(1, 64 if full else 16, high=cfg.vocab_size).realize())


def _bert_fwd(full: bool) -> list[Tensor]:
  cfg, B, T = (BertConfig.base(), 8, 128) if full else (BertConfig.tiny(), 2, 16)
  model = _realized(BertEncoder(cfg))
  ids, types = Tensor.randint(B, T, high=cfg.vocab_size), Tensor.randint(B, T, high=cfg.type_vocab_size)
  mask = (Tensor.arange(T).reshape(1, T) < Tensor([T, T - T // 4]).reshape(B, 1)) if not full else Tensor.ones(B, T)
  mask = mask.cast("int32").contiguous()
  Tensor.realize(ids, types, mask)
  return [model(ids, types, mask)]


def _mnist_train_step(full: bool) -> list[Tensor]:
  model = _realized(BeautifulMNIST())
  B = 512 if full else 8
  x, y = Tensor.randn(B, 1, 28, 28).realize(), Tensor.randint(B, high=10).realize()
  return _train_step(model, lambda: model(x).sparse_categorical_crossentropy(y))


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
  Workload("resnet50_fwd", "ResNet-50 inference, batch 64 at 224x224 (small: width 8, batch 2 at 32x32)", _resnet50_fwd),
  Workload("resnet18_train_step", "ResNet-18 SGD step, batch 64 at 224x224 (small: width 8, batch 2 at 32x32)", _resnet18_train_step),
  Workload("gpt2_fwd", "GPT-2 small forward, batch 4 x 64 tokens (small: tiny config, 2 x 16)", _gpt2_fwd),
  Workload("gpt2_train_step", "GPT-2 small Adam step on next-token loss, batch 4 x 63 tokens (small: tiny config)", _gpt2_train_step),
  Workload("gpt2_decode", "GPT-2 small one-token decode at symbolic start_pos 63 with KV cache (small: tiny config)", _gpt2_decode),
  Workload("bert_fwd", "BERT-base encoder forward, batch 8 x 128 (small: tiny config, 2 x 16 with padding)", _bert_fwd),
  Workload("llama_decode", "Llama 3.2 1B-shaped one-token decode at symbolic start_pos 63 with KV cache (small: tiny config)", _llama_decode),
  Workload("mnist_train_step", "beautiful_mnist Adam step, batch 512 (small: batch 8)", _mnist_train_step),
]}
