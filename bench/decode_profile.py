"""Where one OLMoE decode step's time goes on a device: random bf16 weights made on the device (no checkpoint), the JIT'd
step timed (tok/s), then one step kernel by kernel (JIT off; tinygrad's DEBUG=2 timing waits on each kernel), summed
by kernel name, largest first; --beam times the JIT'd step again with BEAM search on the step's kernels.

  DEV=CUDA python bench/decode_profile.py --size full --steps 16 --beam 2 --json out.json     # one H200
  DEV=CPU python bench/decode_profile.py --size small --steps 4 --dtype float32                          # the same code, small
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import re
import sys
import time

from tinygrad import Device, Tensor, dtypes
from tinygrad.helpers import Context
from tinygrad.nn.state import get_state_dict

from tinybounty.models.decode_device import SIZES
from tinybounty.models.generate import Generator
from tinybounty.models.olmoe import Olmoe, OlmoeConfig

KERNEL_LINE = re.compile(r"\*\*\*\s+\S+\s+\d+\s+(\S+)\s+arg.*?tm\s+([\d.]+)(us|ms|s)/")
UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def random_olmoe(size: str, max_context: int = 256, dtype=dtypes.bfloat16) -> Olmoe:
  """An OLMoE of a decode_device size with N(0, 0.02) weights (norms 1) in `dtype`, made on Device.DEFAULT."""
  model = Olmoe(OlmoeConfig.from_hf(SIZES[size], max_context))
  for name, t in get_state_dict(model).items():
    if not t.is_param: continue
    w = Tensor.ones(*t.shape) if name.endswith("norm.weight") else Tensor.randn(*t.shape) * 0.02
    t.replace(w.cast(dtype).contiguous()).realize()
  return model


def time_steps(gen: Generator, batch: int, prompt: int, steps: int, beam: int = 0) -> list[float]:
  """Seconds of each JIT'd decode step after a prefill (the first two calls capture the JIT); `beam`: BEAM search on
  the decode step's kernels only (the prefill's keep the default optimizations)."""
  tok = Tensor.ones(batch, 1, dtype=dtypes.int32).contiguous().realize()
  gen.prefill(Tensor.ones(batch, prompt, dtype=dtypes.int32))
  out = []
  for pos in range(prompt, prompt + steps):
    t = time.perf_counter()
    with Context(BEAM=beam): gen.decode(tok, pos).realize()
    Device[Device.DEFAULT].synchronize()
    out.append(time.perf_counter() - t)
  return out


def kernel_times(gen: Generator, batch: int, prompt: int) -> dict[str, tuple[int, float]]:
  """One unjitted decode step's kernels: name -> (count, seconds), from tinygrad's DEBUG=2 lines."""
  tok = Tensor.ones(batch, 1, dtype=dtypes.int32).contiguous().realize()
  gen.prefill(Tensor.ones(batch, prompt, dtype=dtypes.int32))
  with Context(JIT=0): gen.decode(tok, prompt).realize()  # compile first, so the timed step holds only the kernels
  buf = io.StringIO()
  with Context(JIT=0, DEBUG=2), contextlib.redirect_stdout(buf): gen.decode(tok, prompt + 1).realize()
  acc: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
  for line in re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue()).splitlines():
    if (m := KERNEL_LINE.search(line)):
      acc[m.group(1)][0] += 1
      acc[m.group(1)][1] += float(m.group(2)) * UNIT[m.group(3)]
  return {k: (n, s) for k, (n, s) in sorted(acc.items(), key=lambda kv: -kv[1][1])}


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--size", choices=sorted(SIZES), default="small")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--prompt", type=int, default=8)
  p.add_argument("--steps", type=int, default=16)
  p.add_argument("--beam", type=int, default=0, help="also time the JIT'd step with BEAM=this on its kernels")
  p.add_argument("--top", type=int, default=25)
  p.add_argument("--dtype", choices=["bf16", "float32"], default="bf16", help="float32 on the CPU (clang 14 has no __bf16)")
  p.add_argument("--no-matvec", action="store_true", help="tinygrad's own heuristic (Generator(matvec=False)): the baseline")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  def save() -> None:  # after every part, atomically: a run cut short keeps what it measured
    if not a.json: return
    with open(a.json + ".tmp", "w") as f: json.dump(res, f, indent=1)
    os.replace(a.json + ".tmp", a.json)

  t0 = time.perf_counter()
  model = random_olmoe(a.size, a.prompt + a.steps + 8, dtypes.bfloat16 if a.dtype == "bf16" else dtypes.float32)
  print(f"{a.size} OLMoE on {Device.DEFAULT}: random {a.dtype} weights in {time.perf_counter() - t0:.1f} s", flush=True)
  gen = Generator(model, matvec=not a.no_matvec)
  res: dict = dict(matvec=not a.no_matvec, size=a.size, batch=a.batch, device=Device.DEFAULT, bytes_per_token=model.bytes_per_token())
  steps = time_steps(gen, a.batch, a.prompt, a.steps)
  timed = sorted(steps[2:] or steps)
  res["step_s"] = steps
  print(f"{'tinygrad heuristic' if a.no_matvec else 'models.matvec'}: JIT'd step: median {timed[len(timed) // 2] * 1e3:.2f} ms, "
        f"min {timed[0] * 1e3:.2f} ms "
        f"({a.batch / timed[len(timed) // 2]:.1f} tok/s median); {res['bytes_per_token'] / 1e6:.0f} MB weights per token", flush=True)
  save()
  kt = kernel_times(gen, a.batch, a.prompt)
  total = sum(s for _, s in kt.values())
  res["kernels"] = kt
  print(f"unjitted step: {sum(n for n, _ in kt.values())} kernels, {total * 1e3:.2f} ms of kernel time; largest:")
  for name, (n, s) in list(kt.items())[:a.top]: print(f"  {s * 1e3:8.3f} ms {s / total:6.1%}  x{n:<4d} {name}")
  save()
  if a.beam:
    t = time.perf_counter()
    beam_steps = time_steps(Generator(model, matvec=not a.no_matvec), a.batch, a.prompt, a.steps, a.beam)
    bt = sorted(beam_steps[2:] or beam_steps)
    res["beam"] = dict(width=a.beam, step_s=beam_steps, seconds=time.perf_counter() - t)
    print(f"BEAM={a.beam} on the step: median {bt[len(bt) // 2] * 1e3:.2f} ms ({a.batch / bt[len(bt) // 2]:.1f} tok/s), "
          f"search and run {res['beam']['seconds']:.0f} s", flush=True)
    save()
  return 0


if __name__ == "__main__":
  sys.exit(main())
