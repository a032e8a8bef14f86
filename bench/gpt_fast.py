"""gpt-fast's generate.py (or our gpt_fast_like.py) decoding on tiny vs PyTorch (CPU or CUDA), in one bench run.

  PYTHONPATH=. DEV=CPU python bench/gpt_fast.py [--models stories15M stories110M] [--tokens 32] [--modes eager compile]
                                                [--script ext/gpt-fast/generate.py] [--repeats 3]
  PYTHONPATH=. DEV=CUDA python bench/gpt_fast.py --models 7B --devices cuda tiny --int8    # on an NVIDIA GPU

Every (device, mode) run is its own spawned process (once tiny is registered, torch makes it the process's accelerator;
see runner/compare.in_child), bounded by --run-timeout. The first device's eager run is the token reference. --int8
also quantizes the checkpoint with gpt-fast's own quantize.py (int8 weight-only; it quantizes on the CPU) and decodes it.

Where a run's tokens part from the reference's, both devices are run once more over the reference's tokens up to there
(teacher forcing, runner.gpt_fast.agreement): a flip within twice the measured logit difference is a near-tie of a
random-weight bf16 model, a larger one a real disagreement.

For each model a random-weight checkpoint in gpt-fast's format is written (runner/gpt_fast_checkpoint.py), then the
script decodes greedily (--top_k 1 --temperature 0) through the runner on each device and mode: tiny eager, tiny
--compile (routed to the tiny backend), CPU eager, CPU --compile (inductor, where it works here). Figures are the
script's own tokens/sec (it times with torch.cuda.synchronize, which the runner makes synchronize tiny), min/median
over --repeats samples after a warm-up; the tokens of every run are compared with CPU eager's. The memory-bandwidth
limit: bytes read per token (the weights gpt-fast's `_get_model_size` counts, i.e. all but the embedding, plus the KV
cache) over a measured copy bandwidth (a large float32 copy on the CPU, best of 5).
"""
from __future__ import annotations

import argparse
import multiprocessing
import pathlib
import statistics
import sys
import tempfile
import time

import torch

from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.runner.gpt_fast import SCRIPTS, agreement, forced_logits, generate, gpt_fast_checkout
from tinybounty.runner.gpt_fast_checkpoint import SHAPES, write_checkpoint
from tinybounty.runner.run import run_script


def copy_bandwidth(mb: int = 256, cuda: bool = False) -> float:
  """Bytes/s of a float32 copy (read + write counted), best of 5; on the GPU when `cuda` (4 GiB, timed with events)."""
  if cuda:
    src = torch.randn(2**30, device="cuda")
    dst, best = torch.empty_like(src), float("inf")
    for _ in range(6):
      start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
      start.record()
      dst.copy_(src)
      end.record()
      end.synchronize()
      best = min(best, start.elapsed_time(end) / 1e3)
    return 2 * src.numel() * 4 / best
  src = torch.empty(mb * 2**20 // 4)
  dst = torch.empty_like(src)
  best = float("inf")
  for _ in range(5):
    t = time.perf_counter()
    dst.copy_(src)
    best = min(best, time.perf_counter() - t)
  return 2 * src.numel() * 4 / best


def in_child(timeout: float, fn, *args):
  """fn(*args) in a fresh spawned process, killed after `timeout` seconds (TimeoutError)."""
  with multiprocessing.get_context("spawn").Pool(1) as pool:
    return pool.apply_async(fn, args).get(timeout)


def quantize_int8(script: pathlib.Path, checkpoint: pathlib.Path) -> pathlib.Path:
  """gpt-fast's quantize.py --mode int8 on `checkpoint` (it quantizes on the CPU and writes model_int8.pth beside it)."""
  run_script(script.parent / "quantize.py", "cpu", ["--checkpoint_path", str(checkpoint), "--mode", "int8"])
  return checkpoint.parent / "model_int8.pth"


def bytes_per_token(name: str, context: int, batch: int = 1) -> int:
  """bf16 bytes read per decoding step of `batch` sequences: the weights (all but the embedding table, which is only
  gathered), read once for the whole batch, plus every sequence's KV cache."""
  s = SHAPES[name]
  per_layer = (s.n_head + 2 * s.kv_heads) * s.head_dim * s.dim + s.dim * s.dim + 3 * s.hidden * s.dim + 2 * s.dim
  weights = s.n_layer * per_layer + s.vocab_size * s.dim + s.dim
  kv = 2 * s.n_layer * s.kv_heads * s.head_dim * context
  return 2 * (weights + batch * kv)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=["stories15M", "stories110M"], choices=sorted(SHAPES))
  p.add_argument("--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"])
  p.add_argument("--devices", nargs="+", default=["cpu", "tiny"], help="the first device's eager run is the reference (cpu, cuda, tiny)")
  p.add_argument("--tokens", type=int, default=32)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch", type=int, default=1, help="sequences decoded together (generate.py --batch_size; gpt-fast's own script only)")
  p.add_argument("--int8", action="store_true", help="also int8 weight-only (gpt-fast's quantize.py), eager and --modes")
  p.add_argument("--weights", nargs="+", choices=["bf16", "int8"], help="which checkpoints to decode (default: bf16, and int8 with --int8)")
  p.add_argument("--run-timeout", type=float, default=1800, help="seconds one (device, mode) run may take")
  p.add_argument("--dir", type=pathlib.Path, help="checkpoint directory (default: a temporary one); a checkpoint already there is reused")
  p.add_argument("--compile-prefill", action="store_true",
                 help="compile mode also compiles the prefill (generate.py --compile_prefill); else it runs eagerly in every sample's time")
  p.add_argument("--skip", nargs="+", default=[], metavar="DEV:MODE", help="(device, mode) runs to leave out, e.g. tiny:eager")
  p.add_argument("--script", type=pathlib.Path, help="default: gpt-fast's generate.py where its checkout is present, else gpt_fast_like.py")
  a = p.parse_args()
  script = a.script or ((gpt_fast_checkout() / "generate.py") if gpt_fast_checkout() else SCRIPTS / "gpt_fast_like.py")
  if a.batch < 1: p.error(f"--batch must be at least 1, not {a.batch}")
  if a.batch > 1 and script.name != "generate.py":
    p.error(f"--batch {a.batch} needs gpt-fast's generate.py (--batch_size); {script} decodes one sequence")
  extra = ["--batch_size", str(a.batch)] if a.batch > 1 else []
  weights_wanted = a.weights or ["bf16", *(["int8"] if a.int8 else [])]
  b_tag = f"_b{a.batch}" if a.batch > 1 else ""
  flags = " ".join([f"--devices {' '.join(a.devices)} --modes {' '.join(a.modes)} --tokens {a.tokens} --repeats {a.repeats}",
                    *([f"--batch {a.batch}"] if a.batch > 1 else []),
                    *([f"--weights {' '.join(weights_wanted)}"] if a.weights else ["--int8"] if a.int8 else []),
                    *(["--compile-prefill"] if a.compile_prefill else []), *([f"--skip {' '.join(a.skip)}"] if a.skip else [])])
  gpu = "cuda" in a.devices
  bw = copy_bandwidth(cuda=gpu)
  where = machine() if gpu else machine() + " (2 cores, shared/loaded)"
  print(f"script {script}; copy bandwidth {bw / 1e9:.1f} GB/s; machine {where}", file=sys.stderr)
  rows = []
  with tempfile.TemporaryDirectory() as d:
    for name in a.models:
      ckpt = pathlib.Path(a.dir or d) / name / "model.pth"
      if not (a.dir and ckpt.is_file() and (ckpt.parent / "tokenizer.model").is_file()): ckpt = write_checkpoint(ckpt.parent)
      else: print(f"{name}: reusing {ckpt}", file=sys.stderr)
      limit = bw / bytes_per_token(name, a.tokens + 16, a.batch)  # steps/s: each sequence's tok/s
      ckpts = [("bf16", ckpt)] if "bf16" in weights_wanted else []
      if "int8" in weights_wanted:
        try: ckpts.append(("int8", in_child(a.run_timeout, quantize_int8, script, ckpt)))
        except Exception as e: print(f"{name} int8 quantization: FAILED {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
      for weights, path in ckpts:
        limit_w = limit / 2 if weights == "int8" else limit  # about half the bytes (int8 weights; the KV cache stays bf16)
        ref_tokens, base, base_name = None, None, None
        for mode in a.modes:
          for dev in a.devices:
            if f"{dev}:{mode}" in a.skip: continue
            started = time.perf_counter()
            try:
              g = in_child(a.run_timeout, generate, script, dev, path, "Hello, my name is", a.tokens, mode == "compile",
                           mode == "compile" and a.compile_prefill, a.repeats + 1, extra)
            except Exception as e:  # inductor may not build on this machine, a run may time out: say so, never a figure
              print(f"{name} {weights} {dev} {mode}: FAILED after {time.perf_counter() - started:.0f} s, {type(e).__name__}: {str(e)[:300]}",
                    file=sys.stderr, flush=True)
              continue
            tps = g.tokens_per_s[1:] or g.tokens_per_s  # first sample: warm-up (kernel compiles)
            print(f"{name} {weights} {dev} {mode}: ran in {time.perf_counter() - started:.0f} s, median {statistics.median(tps):.2f} tok/s",
                  file=sys.stderr, flush=True)  # before the token analysis, which may take a while
            if ref_tokens is None: ref_tokens, ref_name, ref_dev = g.tokens, f"{dev} {mode}", dev
            def forced(which: str, prefix: list[int], dev=dev, path=path):  # eager, in its own process
              return in_child(a.run_timeout, forced_logits, script, ref_dev if which == "ref" else dev, path, prefix)
            # the forced pass is eager: against the reference's own device (another mode) it would measure no difference
            try: agree = agreement(ref_tokens, g.tokens, forced if dev != ref_dev else None)
            except Exception as e:
              agree = agreement(ref_tokens, g.tokens)
              print(f"{name} {weights} {dev} {mode}: teacher-forced logits FAILED {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            same = f"tokens = {ref_name}" if agree.position is None else f"vs {ref_name}: {agree} ({first_difference(g.tokens, ref_tokens)})"
            med = statistics.median(tps)
            if base is None: base, base_name = med, f"{dev} {mode}"
            agg = f" per sequence, {a.batch * med:.1f} aggregate at batch {a.batch}" if a.batch > 1 else ""
            line = (f"{name} {weights} {dev} {mode}: min {min(tps):.2f} / median {med:.2f} tok/s{agg}, {med / base:.2f}x {base_name}; "
                    f"{med / limit_w:.1%} of the bandwidth limit ({limit_w:.0f} tok/s); {same}; "
                    f"whole run {time.perf_counter() - started:.0f} s (load, compile, {a.repeats + 1} samples)")
            print(line, flush=True)
            rows.append(format_row(f"gpt_fast_{name}_{weights}_{dev}_{mode}{b_tag}", where, f"python bench/gpt_fast.py --models {name} {flags}",
                                   line, f"PyTorch {base_name}, same run"))
  print("\n".join(rows))
  return 0


def first_difference(a: list[int], b: list[int]) -> str:
  """Where two token lists first part: 'position i (x vs y)'."""
  i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
  return f"position {i} ({a[i] if i < len(a) else '-'} vs {b[i] if i < len(b) else '-'})"

if __name__ == "__main__":
  raise SystemExit(main())
