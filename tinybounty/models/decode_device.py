"""bf16 decode of a random-weight OLMoE on one device (an H200 with DEV=CUDA and torch on cuda, or the CPU at a smaller
size through the same code): the checkpoint written by transformers itself in bf16 (the model built and initialized on
the torch device, never a float32 host copy), tinybounty's JIT'd decode against transformers eager and transformers with
a static cache + torch.compile at several batch sizes, greedy-token equality, and the fraction of the bandwidth limit
(active weight bytes per token over a measured device-to-device copy bandwidth)."""
from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinybounty.models import decode_bench
from tinybounty.models.decode_bench import OLMOE_MID, OLMOE_SMALL

# allenai/OLMoE-1B-7B-0924's config.json (transformers' OlmoeConfig defaults but for intermediate_size 1024): 6.9B parameters,
# 1.3B active. eos/bos None so greedy decoding never stops early; pad 1 as the real tokenizer has.
OLMOE_FULL = dict(vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=16, num_attention_heads=16,
                  num_key_value_heads=16, num_experts=64, num_experts_per_tok=8, max_position_embeddings=4096, rms_norm_eps=1e-5,
                  initializer_range=0.02, tie_word_embeddings=False, clip_qkv=None, norm_topk_prob=False, attention_bias=False,
                  eos_token_id=None, bos_token_id=None, pad_token_id=1)
SIZES = {"full": OLMOE_FULL, "mid": OLMOE_MID, "small": OLMOE_SMALL}  # small: the 2-layer test size
COMPILE_GUESS_S = 120.0  # a first torch.compile of the 16-layer model, before one has been timed


def active_bytes_per_token(cfg: dict[str, Any], itemsize: int = 2, batch: int = 1) -> float:
  """Weight bytes one decode step reads per token: an embedding row, attention (q/k/v/o and QK-norm), the norms, the
  router, the top-k of the experts, the final norm and lm_head. At batch > 1 the shared weights are read once per step
  and the experts once per distinct expert: the expected count under uniform routing, E * (1 - (1 - k/E)^batch)."""
  V, D, I, L = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
  H = cfg["num_attention_heads"]
  hd, kv = D // H, cfg.get("num_key_value_heads") or H
  E, K = cfg["num_experts"], cfg["num_experts_per_tok"]
  attn = D * H * hd * 2 + D * kv * hd * 2 + H * hd + kv * hd  # q, o; k, v; q_norm, k_norm
  experts = E * (1 - (1 - K / E) ** batch)
  layer = attn + 2 * D + E * D + experts * 3 * I * D
  shared = L * layer + D + V * D  # layers, final norm, lm_head
  return (batch * D + shared) * itemsize / batch


def copy_bandwidth(device: str, nbytes: int = 1 << 30, repeats: int = 10) -> float:
  """Bytes/s of a torch device-to-device copy of `nbytes` (read + write counted), best of `repeats`; timed with CUDA
  events on a GPU, with the clock on the CPU."""
  import torch
  torch_context(device)
  src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
  dst = torch.empty_like(src)
  best = float("inf")
  for _ in range(repeats + 1):
    if device.startswith("cuda"):
      start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
      start.record()
      dst.copy_(src)
      end.record()
      torch.cuda.synchronize()
      best = min(best, start.elapsed_time(end) / 1e3)
    else:
      t0 = time.perf_counter()
      dst.copy_(src)
      best = min(best, time.perf_counter() - t0)
  del src, dst
  return 2 * nbytes / best


def sync(device: str) -> None:
  import torch
  if device.startswith("cuda"): torch.cuda.synchronize()


_warned_context = False


def torch_context(device: str) -> None:
  """Make the device's primary CUDA context current again before torch works. tinygrad's CUDA backend creates its own
  context and leaves it current on the thread (it sets it before each of its own calls), while the CUDA runtime torch
  uses runs in whatever context is current: torch's memory and kernels live in the primary one."""
  global _warned_context
  if not device.startswith("cuda"): return
  import ctypes

  import torch
  try:
    cu = ctypes.CDLL("libcuda.so.1")
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    if (rc := cu.cuDeviceGet(ctypes.byref(dev), ctypes.c_int(torch.cuda.current_device()))) != 0: raise RuntimeError(f"cuDeviceGet: {rc}")
    if (rc := cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev)) != 0: raise RuntimeError(f"cuDevicePrimaryCtxRetain: {rc}")
    if (rc := cu.cuCtxSetCurrent(ctx)) != 0: raise RuntimeError(f"cuCtxSetCurrent: {rc}")
  except Exception as e:  # noqa: BLE001 - a missing driver or torch without CUDA: say so once, torch then fails on its own terms
    if not _warned_context: print(f"could not make the primary CUDA context current ({e}); torch runs in the current one", file=sys.stderr)
    _warned_context = True


def write_checkpoint_bf16(config: dict[str, Any], path: Path, device: str, seed: int = 0, shard: str = "4GB") -> Any:
  """Build OlmoeForCausalLM(config) in bf16 directly on the torch `device` (initialized there), save it with
  save_pretrained into a temporary directory beside `path`, fsync, rename to `path`; return the model (on `device`)."""
  import shutil

  import torch
  import transformers
  torch_context(device)
  torch.manual_seed(seed)
  prev = torch.get_default_dtype()
  torch.set_default_dtype(torch.bfloat16)
  try:
    with torch.device(device): model = transformers.OlmoeForCausalLM(transformers.OlmoeConfig(**config)).eval()
  finally:
    torch.set_default_dtype(prev)
  if (dt := next(model.parameters()).dtype) != torch.bfloat16: raise RuntimeError(f"the model was built in {dt}, not bfloat16")
  tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  model.save_pretrained(tmp, max_shard_size=shard)
  for f in tmp.iterdir():
    with open(f, "rb") as fh: os.fsync(fh.fileno())
  os.replace(tmp, path)
  return model


def load_transformers(path: Path, device: str) -> Any:
  import torch
  import transformers
  torch_context(device)
  return transformers.OlmoeForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(device).eval()


def check_config(path: Path, config: dict[str, Any]) -> bool:
  """A CheckpointError-like ValueError when the checkpoint at `path` is not of the requested shape (a stale --dir)."""
  import json
  have = json.loads((path / "config.json").read_text())
  wrong = {k: (have.get(k), v) for k, v in config.items() if k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                                                  "num_experts", "num_experts_per_tok") and have.get(k) != v}
  if wrong: raise ValueError(f"{path} holds another config ({wrong}, as (stored, wanted)): remove it or pass another --dir")
  if have.get("dtype", have.get("torch_dtype")) != "bfloat16": raise ValueError(f"{path} is not a bf16 checkpoint: remove it or pass another --dir")
  return True


@dataclass
class Run:
  """Per-step decode seconds of one implementation at one batch size (after warm-up and any compile)."""
  name: str
  batch: int
  steps: list[float]
  note: str = ""

  @property
  def median_tok_s(self) -> float:
    """Tokens per second per sequence at the median step."""
    return 1 / statistics.median(self.steps)

  @property
  def best_tok_s(self) -> float:
    return 1 / min(self.steps)

  def summary(self) -> dict[str, Any]:
    return dict(name=self.name, batch=self.batch, steps=len(self.steps), median_tok_s_per_seq=self.median_tok_s, best_tok_s_per_seq=self.best_tok_s,
                median_tok_s_aggregate=self.median_tok_s * self.batch, best_tok_s_aggregate=self.best_tok_s * self.batch,
                median_step_ms=statistics.median(self.steps) * 1e3, min_step_ms=min(self.steps) * 1e3, note=self.note)


def time_tinybounty(gen: Any, prompt: np.ndarray, steps: int, warmup: int = 3) -> Run:
  """decode_bench.time_tinybounty (each step ends by reading the argmax tokens back, a device sync; the first `warmup`
  steps are not timed) after making tinygrad's device current again."""
  from tinygrad import Device
  Device[Device.DEFAULT].synchronize()  # on CUDA this makes tinygrad's context current again (its graph launches assume it)
  return Run("tinybounty", prompt.shape[0], decode_bench.time_tinybounty(gen, prompt, steps, warmup).steps)


def hf_generate(model: Any, prompt: np.ndarray, new_tokens: int, device: str, compiled: bool) -> tuple[np.ndarray, list[float]]:
  """transformers' greedy `generate` of exactly `new_tokens` tokens: eager with its dynamic cache, or (compiled) with a
  static cache, which generate compiles with torch.compile (mode reduce-overhead). Returns the new tokens and the time
  of each token's logits (synced), whose differences are the decode steps."""
  import torch
  from transformers import LogitsProcessor, LogitsProcessorList

  stamps: list[float] = []

  class Stamp(LogitsProcessor):
    def __call__(self, input_ids, scores):
      sync(device)
      stamps.append(time.perf_counter())
      return scores

  torch_context(device)
  kw: dict[str, Any] = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=1,
                            logits_processor=LogitsProcessorList([Stamp()]))
  if compiled:
    from transformers import CompileConfig
    kw.update(cache_implementation="static", compile_config=CompileConfig(fullgraph=False, mode="reduce-overhead"))
  else:
    kw.update(disable_compile=True)
  ids = torch.from_numpy(prompt).long().to(device)
  with torch.no_grad(): out = model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
  return out[:, prompt.shape[1]:].cpu().numpy(), stamps


def time_transformers(model: Any, prompt: np.ndarray, steps: int, device: str, compiled: bool, warmup: int = 3) -> Run:
  """Per-step seconds of transformers' greedy decode: one untimed generate first (compiles and records CUDA graphs when
  `compiled`; of the same length, since a static cache's length is part of the compiled shapes), then the timed generate
  of warmup + steps + 1 tokens whose last `steps` step gaps are kept."""
  hf_generate(model, prompt, warmup + steps + 1, device, compiled)
  _, stamps = hf_generate(model, prompt, warmup + steps + 1, device, compiled)
  gaps = np.diff(stamps).tolist()[warmup:]
  note = ""
  if compiled: note = "static cache, torch.compile (reduce-overhead)" + ("" if hasattr(model, "_compiled_call") else " (generate did NOT compile)")
  return Run("transformers compiled" if compiled else "transformers eager", prompt.shape[0], gaps, note)


def first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
  """The first position where two token sequences differ, or None."""
  diff = np.nonzero(np.asarray(a).reshape(-1) != np.asarray(b).reshape(-1))[0]
  return int(diff[0]) if len(diff) else None


@dataclass
class Report:
  """Everything one measurement produced; parts that failed leave an `errors` line instead of figures."""
  size: str
  device: str
  tinygrad_device: str
  config: dict[str, Any]
  tinybounty_dtype: str = ""
  bandwidth: float | None = None
  bytes_per_token: dict[int, float] = field(default_factory=dict)
  runs: list[Run] = field(default_factory=list)
  greedy: dict[str, Any] = field(default_factory=dict)
  errors: list[str] = field(default_factory=list)
  seconds: dict[str, float] = field(default_factory=dict)
  save: Any = field(default=None, repr=False)  # called with the report after every part (the bench's --json, kept current)

  def limit_fraction(self, run: Run) -> float | None:
    """Aggregate tok/s at the median step over the bandwidth limit at that batch (bandwidth / bytes per token)."""
    if self.bandwidth is None or run.batch not in self.bytes_per_token: return None
    return run.median_tok_s * run.batch * self.bytes_per_token[run.batch] / self.bandwidth

  def to_json(self) -> dict[str, Any]:
    d = asdict(self)
    d.pop("save")
    d["runs"] = [dict(r.summary(), bandwidth_limit_fraction=self.limit_fraction(r)) for r in self.runs]
    d["bytes_per_token"] = {str(k): v for k, v in self.bytes_per_token.items()}
    return d

  def figure(self, batch: int) -> str | None:
    """The benchmarks.md figure for one batch size, or None when tinybounty did not run at it."""
    ours = next((r for r in self.runs if r.name == "tinybounty" and r.batch == batch), None)
    if ours is None: return None
    frac = self.limit_fraction(ours)
    fig = f"batch {batch}: {ours.median_tok_s:.1f} tok/s/seq median ({ours.best_tok_s:.1f} best), {ours.median_tok_s * batch:.1f} tok/s aggregate"
    if frac is not None:
      fig += (f", {frac:.1%} of the bandwidth limit ({self.bytes_per_token[batch] / 1e6:.0f} MB/token bf16 at "
              f"{self.bandwidth / 1e9:.0f} GB/s measured copy)")
    for r in self.runs:
      if r.batch == batch and r is not ours: fig += f"; {ours.median_tok_s / r.median_tok_s:.2f}x {r.name} ({r.median_tok_s:.1f} tok/s/seq)"
    if batch == 1 and self.greedy: fig += f"; greedy {self.greedy['tokens']} tokens: {self.greedy['verdict']}"
    return fig


def guarded(report: Report, what: str, fn, *args, **kwargs) -> Any:
  """Run one part; a failure is printed and recorded, and the measurement goes on."""
  t0 = time.perf_counter()
  try:
    return fn(*args, **kwargs)
  except Exception as e:  # noqa: BLE001 - every part is independent: report it and go on
    line = f"{what} FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    print(line, file=sys.stderr, flush=True)
    report.errors.append(line)
    return None
  finally:
    report.seconds[what] = report.seconds.get(what, 0.0) + time.perf_counter() - t0
    if report.save is not None: report.save(report)


def measure(size: str, path: Path, device: str, batches: list[int], steps: int, prompt_len: int = 8, greedy_tokens: int = 32,
            compile_hf: bool = True, beam: int = 0, log=print, deadline: float | None = None, save=None) -> Report:
  """The whole bf16 measurement (see the module docstring); every part guarded. A transformers compile that would likely
  end after `deadline` (a time.perf_counter() value) is skipped with a line saying so."""
  import torch
  from tinygrad import Context, Device, dtypes

  from tinybounty.models.generate import Generator
  from tinybounty.models.olmoe import load_olmoe
  config = SIZES[size]
  rep = Report(size, device, Device.DEFAULT, config, save=save)
  for b in batches: rep.bytes_per_token[b] = active_bytes_per_token(config, 2, b)  # bf16 bytes, the GPU's figure
  rep.bandwidth = guarded(rep, "copy bandwidth", copy_bandwidth, device, (1 << 30) if device.startswith("cuda") else (1 << 27))
  if rep.bandwidth: log(f"device-to-device copy bandwidth ({device}): {rep.bandwidth / 1e9:.1f} GB/s (read + write)")

  hf = None
  if (path / "config.json").is_file():
    if not guarded(rep, "checkpoint check", check_config, path, config): return rep
    log(f"reusing the checkpoint in {path}")
    hf = guarded(rep, "transformers load", load_transformers, path, device)
  else:
    log(f"writing the bf16 checkpoint to {path} (built on {device}) ...")
    hf = guarded(rep, "checkpoint write", write_checkpoint_bf16, config, path, device)
    if not (path / "config.json").is_file(): return rep
  log(f"checkpoint ready ({rep.seconds.get('checkpoint write', rep.seconds.get('transformers load', 0.0)):.1f} s)")
  if hf is not None: log(f"transformers experts implementation: {getattr(hf.config, '_experts_implementation', None)}")

  # tinygrad 0.14 cannot compute in bf16 on the CPU (clang: '__bf16 is not supported on this target'; LLVM: undefined
  # __truncsfbf2), so there tinybounty widens the same bf16 weights to float32 exactly; every other device keeps bf16
  wdt = dtypes.float32 if Device.DEFAULT.split(":")[0] == "CPU" else dtypes.bfloat16
  rep.tinybounty_dtype = str(wdt)
  if wdt != dtypes.bfloat16: log(f"tinybounty computes in {wdt} on {Device.DEFAULT} (tinygrad 0.14 has no bf16 arithmetic on the CPU)")
  model = guarded(rep, "tinybounty load", load_olmoe, str(path), dtype=wdt, max_context=prompt_len + max(steps + 16, greedy_tokens + 8))
  if model is not None:
    wdt = {t.dtype for t in (model.lm_head.weight, model.model.layers[0].mlp.experts.gate_proj)}
    analytic = active_bytes_per_token(config) / 1e6
    log(f"tinybounty loaded on {Device.DEFAULT} in {rep.seconds['tinybounty load']:.1f} s, weights {wdt}, "
        f"{model.bytes_per_token() / 1e6:.0f} MB read per batch-1 token (analytic {analytic:.0f} MB)")
  rng = np.random.default_rng(0)
  prompts = {b: rng.integers(2, config["vocab_size"], (b, prompt_len)) for b in batches}
  gen = Generator(model) if model is not None else None

  # greedy tokens at batch 1: tinybounty vs transformers eager, same prompt, same weights
  g_prompt = prompts.get(1, rng.integers(2, config["vocab_size"], (1, prompt_len)))
  ours_tok = ref_tok = None
  if gen is not None:
    Device[Device.DEFAULT].synchronize()  # tinygrad's CUDA context current again after torch's work
    with Context(BEAM=beam): ours_tok = guarded(rep, "tinybounty greedy", lambda: np.stack(list(gen.greedy(g_prompt.tolist(), greedy_tokens)), 1))
  if hf is not None: ref_tok = guarded(rep, "transformers greedy", lambda: hf_generate(hf, g_prompt, greedy_tokens, device, compiled=False)[0])
  if ours_tok is not None and ref_tok is not None:
    pos = first_difference(ours_tok, ref_tok)
    verdict = "equal to transformers eager" if pos is None else f"first differs at position {pos} of {greedy_tokens}"
    rep.greedy = dict(tokens=greedy_tokens, equal=pos is None, first_difference=pos, verdict=verdict,
                      tinybounty=ours_tok.tolist(), transformers=ref_tok.tolist())
    log(f"greedy {greedy_tokens} tokens at batch 1: {verdict}")
    if pos is not None: log(f"  tinybounty   {ours_tok.tolist()}\n  transformers {ref_tok.tolist()}")

  for b in batches:
    if gen is not None:
      with Context(BEAM=beam): r = guarded(rep, f"tinybounty batch {b}", time_tinybounty, gen, prompts[b], steps)
      if r is not None: rep.runs.append(r)
    if hf is not None:
      r = guarded(rep, f"transformers eager batch {b}", time_transformers, hf, prompts[b], steps, device, False)
      if r is not None: rep.runs.append(r)
    print_batch(rep, b, log)
  # torch.compile last: its compile time is the least predictable part, and the budget may leave it out
  for b in batches if compile_hf and hf is not None else []:
    need = 1.2 * max([v for k, v in rep.seconds.items() if k.startswith("transformers compiled")] or [COMPILE_GUESS_S])
    if deadline is not None and time.perf_counter() + need > deadline:
      line = f"transformers compiled batch {b} SKIPPED: ~{need:.0f} s of compiling would pass the --budget-s deadline"
      log(line)
      rep.errors.append(line)
      continue
    r = guarded(rep, f"transformers compiled batch {b}", time_transformers, hf, prompts[b], steps, device, True)
    torch._dynamo.reset()  # batch sizes compile separately, never as one dynamic-shape graph
    if r is not None:
      rep.runs.append(r)
      print_batch(rep, b, log, only="transformers compiled")
  return rep


def print_batch(rep: Report, b: int, log, only: str | None = None) -> None:
  for r in rep.runs:
    if r.batch == b and (only is None or r.name == only):
      frac = rep.limit_fraction(r)
      log(f"batch {b} {r.name:24s} {r.median_tok_s:8.2f} tok/s/seq median ({r.best_tok_s:8.2f} best)  {r.median_tok_s * b:9.2f} tok/s aggregate"
          + (f"  {frac:6.1%} of the bandwidth limit" if frac is not None else "") + (f"  [{r.note}]" if r.note else ""))
