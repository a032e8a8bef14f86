"""`tinybounty generate PATH --prompt ...`: greedy generation from a Hugging Face checkpoint directory (OLMoE, Llama 4) or a
llama GGUF file, with a progress bar while loading, tokens streamed as they are produced, and decode tok/s at the end."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DTYPES = {"stored": None, "float32": "float32", "float16": "float16"}


def cmd_generate(args: argparse.Namespace) -> int:
  from tinygrad import Context, dtypes

  from tinybounty.models.generate import GenerationStats, Generator, load_causal_lm
  from tinybounty.models.hf_checkpoint import load_tokenizer
  try:
    if not Path(args.path).exists(): raise FileNotFoundError(f"{args.path} does not exist")
    tokenizer = None if args.prompt_ids else load_tokenizer(args.path)
    ids = [int(t) for t in args.prompt_ids.replace(",", " ").split()] if args.prompt_ids else tokenizer.encode(args.prompt).ids
    if not ids: raise ValueError("the prompt encodes to no tokens")
    dtype = getattr(dtypes, DTYPES[args.dtype]) if DTYPES[args.dtype] else None
    model = load_causal_lm(args.path, device=args.device, dtype=dtype, max_context=len(ids) + args.max_new_tokens, q8=args.q8)
    if max(ids) >= model.cfg.vocab_size: raise ValueError(f"prompt token {max(ids)} is outside the vocabulary ({model.cfg.vocab_size})")
    stats = GenerationStats()
    if args.beam: print(f"tinybounty generate: searching kernel choices once (BEAM={args.beam}); tinygrad caches them on disk per kernel and "
                        "device, so later runs start at speed (--beam 0 skips the search)", file=sys.stderr)
    with Context(BEAM=args.beam):
      for _ in _stream(Generator(model), ids, tokenizer, stats, args.max_new_tokens): pass
  except (FileNotFoundError, ValueError, NotImplementedError) as e:
    print(f"tinybounty generate: {e}", file=sys.stderr)
    return 2
  print(f"prefill {stats.prompt_tokens} tokens in {stats.prefill_s:.2f} s; decode {stats.steps} steps, {stats.decode_tok_s:.2f} tok/s "
        "after the JIT's capture (its first two steps compile)", file=sys.stderr)
  return 0


def _stream(gen, ids: list[int], tokenizer, stats, max_new_tokens: int):
  """Print the continuation as it comes (decoded text when there is a tokenizer, else ids); yields each token."""
  text, out = (tokenizer.decode(ids) if tokenizer else " ".join(map(str, ids))), []
  print(text, end="", flush=True)
  for tok in gen.greedy([ids], max_new_tokens, stats):
    out.append(int(tok[0]))
    if tokenizer:  # print what the new token adds to the decoded text (tokens need not decode one by one)
      full = tokenizer.decode(ids + out)
      print(full[len(text):], end="", flush=True)
      text = full
    else:
      print(f" {out[-1]}", end="", flush=True)
    yield tok
  print()


def add_parser(sub) -> None:
  g = sub.add_parser("generate", help="greedy text generation from a Hugging Face checkpoint directory (OLMoE, Llama 4) or a llama GGUF file")
  g.add_argument("path", help="directory with config.json and safetensors (sharded with model.safetensors.index.json, or one file), "
                 "or a .gguf file (tokenizer.json beside it for --prompt)")
  src = g.add_mutually_exclusive_group(required=True)
  src.add_argument("--prompt", help="prompt text (needs PATH/tokenizer.json, or tokenizer.json beside a GGUF file)")
  src.add_argument("--prompt-ids", metavar="IDS", help="prompt as token ids, comma or space separated (no tokenizer needed)")
  g.add_argument("--max-new-tokens", type=int, default=32)
  g.add_argument("--device", default=None, help="tinygrad device (default: $DEV, else CPU)")
  g.add_argument("--dtype", choices=list(DTYPES), default="stored", help="weight dtype on the device (stored: as in the files, bf16 as float32)")
  g.add_argument("--q8", choices=["dequantize", "native"], default="dequantize",
                 help="a GGUF file's Q8_0 weights: dequantized to float32 at load, or run natively (int8 + block scales, a third of the bytes)")
  g.add_argument("--beam", type=int, default=2, help="BEAM width of the search for kernel choices (default 2: on this CPU, about 3x the "
                 "decode speed); tinygrad caches each choice per kernel and device on disk, so only a first run searches; 0 skips the search")
  g.set_defaults(func=cmd_generate)
