"""Decode-speed measurement shared by bench/llm_decode.py and the registry checks 12 and 16: random-weight checkpoints
written by transformers, per-step decode times of tinybounty's JIT'd decode and of transformers eager with its KV cache,
the machine's read bandwidth, and the fraction of the bandwidth limit (bytes read per token over read bandwidth)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Device, Tensor, TinyJit

# OLMoE's ratios (64 experts, top-8, QK-norm) at a width that fits a shared 2-core CPU: ~230 MB of fp16 weights per token
OLMOE_MID = dict(vocab_size=32000, hidden_size=1024, intermediate_size=256, num_hidden_layers=8, num_attention_heads=16,
                 num_key_value_heads=16, num_experts=64, num_experts_per_tok=8, initializer_range=0.05, eos_token_id=None, pad_token_id=0)
OLMOE_SMALL = dict(vocab_size=512, hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   num_experts=16, num_experts_per_tok=4, initializer_range=0.1, eos_token_id=None, pad_token_id=0)
# Scout's layout (16 experts top-1 + a shared expert in every layer, 3 chunked RoPE layers per NoPE layer): ~310 MB/token float32
LLAMA4_MID = dict(vocab_size=32000, hidden_size=1024, intermediate_size=512, intermediate_size_mlp=1024, num_hidden_layers=8, num_attention_heads=16,
                  num_key_value_heads=4, head_dim=64, num_local_experts=16, initializer_range=0.05, eos_token_id=None, pad_token_id=0,
                  bos_token_id=None)
MID = {"olmoe": OLMOE_MID, "llama4": LLAMA4_MID}
LLAMA4_SMALL = dict(vocab_size=512, hidden_size=64, intermediate_size=32, intermediate_size_mlp=48, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, num_local_experts=8, interleave_moe_layer_step=2, attention_chunk_size=8, floor_scale=4,
                    attn_scale=0.5, initializer_range=0.1, eos_token_id=None, pad_token_id=0, bos_token_id=None)


def write_checkpoint(arch: str, config: dict[str, Any], path: Path, dtype: str = "float32", seed: int = 0, shard: str = "200MB") -> Any:
  """Write a random-weight `arch` ("olmoe" or "llama4") checkpoint with transformers (sharded safetensors) and return the model."""
  import torch
  import transformers
  cls, cfg_cls = {"olmoe": (transformers.OlmoeForCausalLM, transformers.OlmoeConfig),
                  "llama4": (transformers.Llama4ForCausalLM, transformers.Llama4TextConfig)}[arch]
  torch.manual_seed(seed)
  model = cls(cfg_cls(**config)).to(getattr(torch, dtype)).eval()
  model.save_pretrained(path, max_shard_size=shard)
  return model


def read_bandwidth(nbytes: int = 1 << 29, repeats: int = 7) -> float:
  """Bytes/s of tinygrad summing a realized `nbytes` float32 buffer on the default device (best of `repeats`): the read
  bandwidth a decode step can hope for."""
  x = Tensor.ones(nbytes // 4).contiguous().realize()
  total = TinyJit(lambda t: t.sum().realize())
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    total(x)
    Device[Device.DEFAULT].synchronize()
    best = min(best, time.perf_counter() - t0)
  return nbytes / best


@dataclass
class DecodeTimes:
  """Per-step seconds of a decode run (after warm-up) at batch `batch`."""
  name: str
  steps: list[float]
  batch: int = 1

  @property
  def median_tok_s(self) -> float:
    return self.batch / statistics.median(self.steps)

  @property
  def best_tok_s(self) -> float:
    return self.batch / min(self.steps)


def time_tinybounty(gen: Any, prompt: np.ndarray, steps: int, warmup: int = 3) -> DecodeTimes:
  """Decode `steps` greedy tokens after `warmup` (the JIT captures on its second call) with a `Generator`; per-step seconds."""
  from tinygrad import dtypes
  B, T = prompt.shape
  nxt = gen.prefill(Tensor(prompt, dtype=dtypes.int32))[:, -1].argmax(-1).numpy().astype(np.int32)
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    nxt = gen.next_tokens(nxt, T + i)
    if i >= warmup: times.append(time.perf_counter() - t0)
  return DecodeTimes("tinybounty", times, B)


def time_transformers(model: Any, prompt: np.ndarray, steps: int, warmup: int = 3, name: str = "transformers") -> DecodeTimes:
  """The same greedy decode with transformers eager and its DynamicCache; per-step seconds."""
  import torch
  from transformers import DynamicCache
  with torch.no_grad():
    cache = DynamicCache(config=model.config)
    out = model(torch.from_numpy(prompt).long(), past_key_values=cache, use_cache=True)
    nxt, times = out.logits[:, -1].argmax(-1, keepdim=True), []
    for i in range(warmup + steps):
      t0 = time.perf_counter()
      out = model(nxt, past_key_values=cache, use_cache=True)
      nxt = out.logits[:, -1].argmax(-1, keepdim=True)
      if i >= warmup: times.append(time.perf_counter() - t0)
  return DecodeTimes(name, times, prompt.shape[0])


def reference_match(arch: str, config: dict[str, Any], tokens: int = 16, batch: int = 2) -> tuple[bool, str]:
  """Write a small random `arch` checkpoint with transformers, load it here, and compare with transformers: full-forward
  logits within 1e-4 of their scale and `tokens` greedy tokens from the JIT'd decode at `batch` rows. (ok, what was seen)."""
  import tempfile

  import torch
  from tinygrad import Context, dtypes

  from tinybounty.models.generate import Generator, load_causal_lm
  with tempfile.TemporaryDirectory() as d, Context(NOOPT=1):
    ref = write_checkpoint(arch, config, Path(d), shard="64KB")
    model = load_causal_lm(d, max_context=32 + tokens)
    ids = np.random.default_rng(0).integers(0, config["vocab_size"], (batch, 12))
    with torch.no_grad():
      want = ref(torch.from_numpy(ids).long()).logits.numpy()
      greedy = ref.generate(torch.from_numpy(ids).long(), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                            eos_token_id=None, pad_token_id=0)[:, ids.shape[1]:].numpy()
    got = model(Tensor(ids, dtype=dtypes.int32), use_cache=False).numpy()
    err = float(np.abs(got - want).max() / np.abs(want).max())
    ours = np.stack(list(Generator(model).greedy(ids.tolist(), tokens)), axis=1)
  same = int((ours == greedy).all(axis=1).sum())
  return err <= 1e-4 and same == batch, f"logits max error {err:.1e} of scale (bound 1e-4); greedy {tokens} tokens equal in {same}/{batch} rows"


@dataclass
class MidDecode:
  """One mid-size decode measurement: tinybounty's and transformers' step times, bytes per token, read bandwidth."""
  ours: DecodeTimes
  others: list[DecodeTimes]
  bytes_per_token: int
  bandwidth: float

  @property
  def fraction(self) -> float:
    """Median decode tok/s over the bandwidth limit (bandwidth / bytes per token)."""
    return self.ours.median_tok_s * self.bytes_per_token / self.bandwidth

  def figure(self) -> str:
    o = self.ours
    fig = (f"{o.median_tok_s:.2f} tok/s median ({o.best_tok_s:.2f} best), {self.fraction:.0%} of the read-bandwidth limit "
           f"({self.bytes_per_token / 1e6:.0f} MB/token float32 at {self.bandwidth / 1e9:.2f} GB/s)")
    for r in self.others: fig += f"; {o.median_tok_s / r.median_tok_s:.2f}x {r.name} ({r.median_tok_s:.2f} tok/s)"
    return fig


def measure_mid(arch: str, path: Path, steps: int = 24, prompt_len: int = 8, beam: int = 0, transformers_dtypes: tuple[str, ...] = ()) -> MidDecode:
  """Batch-1 decode of the MID[arch] checkpoint at `path` (written in fp16 if absent): tinybounty with float32 weights,
  then transformers eager in each of `transformers_dtypes`, in this process."""
  import sys

  from tinygrad import Context, dtypes

  from tinybounty.models.generate import Generator, load_causal_lm
  if not (path / "config.json").is_file():
    print(f"writing the checkpoint to {path} ...", file=sys.stderr)
    write_checkpoint(arch, MID[arch], path, dtype="float16")
  prompt = np.random.default_rng(0).integers(0, MID[arch]["vocab_size"], (1, prompt_len))
  bandwidth = read_bandwidth()
  model = load_causal_lm(str(path), max_context=prompt_len + steps + 8, dtype=dtypes.float32)
  per_token = model.bytes_per_token()
  with Context(BEAM=beam): ours = time_tinybounty(Generator(model), prompt, steps)
  del model
  others = []
  if transformers_dtypes:
    import torch
    import transformers
    for dt in transformers_dtypes:
      cls = {"olmoe": transformers.OlmoeForCausalLM, "llama4": transformers.Llama4ForCausalLM}[arch]
      hf = cls.from_pretrained(path, dtype=getattr(torch, dt)).eval()
      others.append(time_transformers(hf, prompt, steps, name=f"transformers eager {dt}"))
      del hf
  return MidDecode(ours, others, per_token, bandwidth)
