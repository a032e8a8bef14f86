"""Batch-1 greedy decode of a random-weight OLMoE-shaped model (64 experts, top-8) from a checkpoint written by
transformers: tinybounty (tinygrad, JIT'd decode, gathered experts) vs transformers eager on the same weights, in one
process, and the fraction of the bandwidth limit (weight bytes one token reads over the measured read bandwidth).

  python bench/llm_decode.py                       # mid-size config (~470 MB/token in float32), 24 timed steps
  python bench/llm_decode.py --arch llama4          # Llama 4 Scout's layout (16 experts top-1 + shared expert), ~310 MB/token
  python bench/llm_decode.py --steps 48 --dir /tmp/olmoe_mid

bf16 on a device (one H200: DEV=CUDA with torch on cuda), full-size OLMoE-1B-7B, batch 1 and 8, transformers eager and
compiled (static cache + torch.compile), greedy-token equality, --json with every figure (on the CPU, where tinygrad
0.14 has no bf16 arithmetic, tinybounty widens the bf16 weights to float32):

  DEV=CUDA python bench/llm_decode.py --size full --device cuda --dtype bf16 --batch 1 8 --dir /tmp/olmoe_full --json out.json
  DEV=CPU python bench/llm_decode.py --size small --device cpu --dtype bf16 --batch 1 2 --steps 4 --skip-compile  # same path, CPU

Without --dtype bf16 (the CPU default above): the checkpoint is written once into --dir (fp16 safetensors) and reused.
tinybounty widens the weights to float32 at load (on tinygrad 0.14's CPU renderers an fp16 weight costs a slow
half->float conversion per element: a 32000x1024 fp16 mat-vec ran at 0.2 GB/s with clang and 0.8 GB/s with LLVM
against 2.3-2.7 GB/s in float32), so it reads float32 bytes; transformers runs in bf16 and in float32. Prints
min/median tok/s, ratios of medians, and docs/benchmarks.md rows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tinybounty.hardware import load, machine
from tinybounty.models import decode_bench as db
from tinybounty.records import bench_command, format_row


def main(argv: list[str] | None = None) -> int:
  started = time.perf_counter()
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--arch", choices=list(db.MID), default="olmoe")
  p.add_argument("--dir", default=None, help="checkpoint directory (written if absent; default /tmp/tinybounty_ARCH_mid)")
  p.add_argument("--steps", type=int, default=24)
  p.add_argument("--prompt", type=int, default=8, help="prompt tokens")
  p.add_argument("--beam", type=int, default=0, help="BEAM width for the decode step's kernels (tinygrad caches each kernel's choice per device)")
  p.add_argument("--skip-transformers", action="store_true")
  p.add_argument("--size", choices=["small", "mid", "full"], default="mid", help="full: OLMoE-1B-7B; small: 2-layer test size (--dtype bf16)")
  p.add_argument("--dtype", choices=["float32", "bf16"], default=None,
                 help="bf16: bf16 checkpoint and bf16 tinybounty weights (default for --size full); float32: the CPU comparison (default for mid)")
  p.add_argument("--device", default="cpu", help="torch device of the transformers side with --dtype bf16 (cuda on a GPU); tinygrad uses DEV")
  p.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (--dtype bf16)")
  p.add_argument("--greedy-tokens", type=int, default=32, help="greedy tokens compared with transformers eager at batch 1 (--dtype bf16)")
  p.add_argument("--skip-compile", action="store_true", help="leave out transformers + torch.compile (--dtype bf16)")
  p.add_argument("--json", default=None, help="write every figure to this file (--dtype bf16)")
  p.add_argument("--budget-s", type=float, default=None, help="skip a transformers compile likely to end later than this many seconds after start")
  args = p.parse_args(argv)
  os.environ.setdefault("DEV", "CPU")
  dtype = args.dtype or ("bf16" if args.size == "full" else "float32")
  if dtype == "bf16":
    if args.arch != "olmoe": p.error("--dtype bf16 measures OLMoE only")
    return bf16_main(args, argv, None if args.budget_s is None else started + args.budget_s)
  if args.size != "mid" or args.batch != [1] or args.json: p.error("--size small/full, --batch and --json need --dtype bf16")
  import torch
  torch.set_num_threads(os.cpu_count() or 1)
  hf_dtypes = () if args.skip_transformers else ("bfloat16", "float32")
  m = db.measure_mid(args.arch, Path(args.dir or f"/tmp/tinybounty_{args.arch}_mid"), args.steps, args.prompt, args.beam, hf_dtypes)
  print(f"read bandwidth {m.bandwidth / 1e9:.2f} GB/s; weights read per token {m.bytes_per_token / 1e6:.1f} MB; "
        f"limit {m.bandwidth / m.bytes_per_token:.2f} tok/s")
  for r in [m.ours, *m.others]: print(f"{r.name:32s} min-step {r.best_tok_s:7.2f} tok/s  median {r.median_tok_s:7.2f} tok/s")
  print(f"tinybounty at {m.fraction:.1%} of the bandwidth limit (median step)")
  where = f"{machine()} ({load()}, shared with other jobs)"
  cmd = bench_command("bench/llm_decode.py", argv)
  print(format_row(f"llm_decode_{args.arch}_mid", where, cmd, m.figure(), "transformers eager, same weights, same process"))
  return 0


def bf16_main(args: argparse.Namespace, argv: list[str] | None, deadline: float | None) -> int:
  """The bf16 device measurement (tinybounty.models.decode_device): prints figures, benchmarks.md rows, and --json."""
  import torch
  from tinygrad import Device

  from tinybounty.models import decode_device as dd
  if not args.device.startswith("cuda"): torch.set_num_threads(os.cpu_count() or 1)
  if args.device.startswith("cuda") and not torch.cuda.is_available(): print(f"--device {args.device}: torch sees no CUDA device", file=sys.stderr)
  path = Path(args.dir or f"/tmp/tinybounty_olmoe_{args.size}_bf16")
  where = machine() if args.device.startswith("cuda") else f"{machine()} ({load()}, shared with other jobs)"
  cmd = bench_command("bench/llm_decode.py", argv)

  def save(rep: dd.Report) -> None:  # after every part, atomically: a run cut short still leaves what it measured
    if not args.json: return
    tmp = Path(f"{args.json}.tmp")
    tmp.write_text(json.dumps(dict(rep.to_json(), machine=where, command=cmd), indent=1, default=str))
    os.replace(tmp, args.json)

  rep = dd.measure(args.size, path, args.device, args.batch, args.steps, args.prompt, args.greedy_tokens, not args.skip_compile, args.beam,
                   log=lambda s: print(s, flush=True), deadline=deadline, save=save)
  print(f"\n=== summary: OLMoE {args.size} bf16, tinygrad {Device.DEFAULT} ({rep.tinybounty_dtype}), torch {args.device}; machine: {where}")
  if rep.bandwidth: print(f"copy bandwidth {rep.bandwidth / 1e9:.1f} GB/s; active bf16 bytes per token " +
                          ", ".join(f"batch {b}: {v / 1e6:.1f} MB" for b, v in rep.bytes_per_token.items()))
  if rep.greedy: print(f"greedy {rep.greedy['tokens']} tokens at batch 1: {rep.greedy['verdict']}")
  for b in args.batch: dd.print_batch(rep, b, print)
  for b in args.batch:
    if (fig := rep.figure(b)) is not None:
      base = " and ".join(r.name for r in rep.runs if r.batch == b and r.name != "tinybounty") or "none"
      print(format_row(f"llm_decode_olmoe_{args.size}_bf16_b{b}", where, cmd, fig, f"{base}, same weights, same process"))
  for line in rep.errors: print(f"not measured: {line}")
  print("seconds per part: " + ", ".join(f"{k} {v:.1f}" for k, v in rep.seconds.items()))
  if args.json:
    save(rep)
    print(f"wrote {args.json}")
  return 1 if rep.errors else 0


if __name__ == "__main__":
  sys.exit(main())
