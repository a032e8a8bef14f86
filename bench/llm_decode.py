"""Batch-1 greedy decode of a random-weight OLMoE-shaped model (64 experts, top-8) from a checkpoint written by
transformers: tinybounty (tinygrad, JIT'd decode, gathered experts) vs transformers eager on the same weights, in one
process, and the fraction of the bandwidth limit (weight bytes one token reads over the measured read bandwidth).

  python bench/llm_decode.py                       # mid-size config (~470 MB/token in float32), 24 timed steps
  python bench/llm_decode.py --arch llama4          # Llama 4 Scout's layout (16 experts top-1 + shared expert), ~310 MB/token
  python bench/llm_decode.py --steps 48 --dir /tmp/olmoe_mid

The checkpoint is written once into --dir (fp16 safetensors) and reused. tinybounty widens the weights to float32 at load
(on tinygrad 0.14's CPU renderers an fp16 weight costs a slow half->float conversion per element: a 32000x1024 fp16
mat-vec ran at 0.2 GB/s with clang and 0.8 GB/s with LLVM against 2.3-2.7 GB/s in float32), so it reads float32 bytes;
transformers runs in bf16 and in float32. Prints min/median tok/s,
ratios of medians, and docs/benchmarks.md rows.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tinybounty.hardware import load, machine
from tinybounty.models import decode_bench as db
from tinybounty.records import bench_command, format_row


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--arch", choices=list(db.MID), default="olmoe")
  p.add_argument("--dir", default=None, help="checkpoint directory (written if absent; default /tmp/tinybounty_ARCH_mid)")
  p.add_argument("--steps", type=int, default=24)
  p.add_argument("--prompt", type=int, default=8, help="prompt tokens")
  p.add_argument("--beam", type=int, default=0, help="BEAM width for the decode step's kernels (tinygrad caches each kernel's choice per device)")
  p.add_argument("--skip-transformers", action="store_true")
  args = p.parse_args(argv)
  os.environ.setdefault("DEV", "CPU")
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


if __name__ == "__main__":
  sys.exit(main())
