"""The models the WebGPU export is verified on (tests, bench, registry check 14), each with its inputs and a tinygrad reference.

Weights are random numpy arrays copied in (no init kernels to compile), scaled so activations stay O(1) through deep stacks.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tinygrad import Tensor, TinyJit, UOp, dtypes
from tinygrad.nn.state import get_state_dict

from tinybounty.models.gpt2 import GPT2, GPT2Config
from tinybounty.models.mnist import BeautifulMNIST
from tinybounty.models.resnet import ResNet


@dataclass
class Example:
  """A jitted function with its export inputs and a tinygrad reference run: reference() -> (steps, outputs), where a step is
  the inputs of one call (numpy arrays and ints, in the exported order) and outputs holds that call's outputs."""
  name: str
  model: object
  jit: TinyJit
  example_inputs: tuple
  reference: Callable[[], tuple[list[list], list[list[np.ndarray]]]]


def random_weights(model: object, seed: int = 0, dtype=np.float32) -> object:
  """Replace every float weight with seeded random values (BatchNorm statistics included, variances positive)."""
  rng = np.random.default_rng(seed)
  for name, t in get_state_dict(model).items():
    if not dtypes.is_float(t.dtype): continue
    if name.endswith("running_var"): a = 0.5 + rng.random(t.shape)
    elif t.ndim >= 2: a = rng.standard_normal(t.shape) / np.sqrt(np.prod(t.shape[1:]))
    else: a = (1.0 if name.endswith(("weight", "gamma")) and "bn" in name.lower() else 0.0) + 0.1 * rng.standard_normal(t.shape)
    t.replace(Tensor(a.astype(dtype)))
  return model


def round_to_half(model: object):
  """Round the model's float32 weights to float16 values (kept float32): the weights a float16 export stores."""
  for t in get_state_dict(model).values():
    if t.dtype == dtypes.float32: t.replace(Tensor(t.numpy().astype(np.float16).astype(np.float32)))


def _forward(name: str, model, x: np.ndarray) -> Example:
  jit = TinyJit(model.__call__)
  return Example(name, model, jit, (Tensor(x).realize(),), lambda: ([[x]], [[model(Tensor(x)).numpy()]]))


def mnist(seed: int = 0) -> Example:
  """tinygrad's beautiful MNIST CNN on one 28x28 image."""
  x = np.random.default_rng(seed + 1).standard_normal((1, 1, 28, 28)).astype(np.float32)
  return _forward("mnist", random_weights(BeautifulMNIST(), seed), x)


def resnet18(seed: int = 0, width: int = 8, size: int = 32) -> Example:
  """A ResNet-18 (the real depth and block layout, `width` channels in the first stage) on one size x size image, 10 classes."""
  x = np.random.default_rng(seed + 1).standard_normal((1, 3, size, size)).astype(np.float32)
  return _forward("resnet18", random_weights(ResNet(18, num_classes=10, width=width), seed), x)


def gpt2_decode(seed: int = 0, steps: int = 8, cfg: GPT2Config | None = None) -> Example:
  """A tiny GPT-2 decoding `steps` tokens greedily with its KV cache; start_pos is a symbolic Variable in the export."""
  cfg = cfg or GPT2Config.tiny()
  model = random_weights(GPT2(cfg), seed)
  jit = TinyJit(lambda tokens, start_pos: model(tokens, start_pos))
  pos = UOp.variable("start_pos", 0, cfg.max_seq_len - 1).bind(0)
  def reference() -> tuple[list[list], list[list[np.ndarray]]]:
    inputs, outs, tok = [], [], 1
    for p in range(steps):
      inputs.append([np.array([[tok]], np.int32), p])
      outs.append([logits := model(Tensor([[tok]], dtype=dtypes.int32), p).numpy()])
      tok = int(logits.argmax())
    return inputs, outs
  return Example("gpt2", model, jit, (Tensor([[1]], dtype=dtypes.int32).realize(), pos), reference)


EXAMPLES: dict[str, Callable[[], Example]] = {"mnist": mnist, "resnet18": resnet18, "gpt2": gpt2_decode}


def max_abs_diff(got: list[list], want: list[list[np.ndarray]]) -> float:
  """The largest absolute difference over every output of every step (shapes of `want`)."""
  assert len(got) == len(want) and all(len(g) == len(w) for g, w in zip(got, want)), "different numbers of steps or outputs"
  return max(float(np.abs(np.asarray(g, np.float64).reshape(w.shape) - w).max()) for gs, ws in zip(got, want) for g, w in zip(gs, ws))
