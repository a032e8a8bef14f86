"""Batch-1 greedy decode of a random-weight mid-size Llama on the CPU, one process: tinybounty (from the GGUF file),
transformers eager (from the same weights as safetensors) and llama.cpp (llama-cpp-python, from the same GGUF file,
n_threads = the core count), with the fraction of the bandwidth limit (weight bytes one token reads over tinygrad's
measured read bandwidth, decode_bench.read_bandwidth).

  python bench/llm_cpu_gguf.py                          # F16 and Q8_0 GGUF, 16 timed steps x 5 rounds
  python bench/llm_cpu_gguf.py --quant F16 --steps 32 --dir /tmp/llama_gguf_mid
  python bench/llm_cpu_gguf.py --beam 2                 # tinygrad's kernel search for the decode step (minutes, cached on disk)

The checkpoint is written once into --dir by transformers (seeded random weights, fp16 safetensors) and gguf's writer
(F16 and Q8_0, q/k rows permuted as llama.cpp's converter does), and reused. tinybounty widens every weight to float32 at
load (tinygrad 0.14's CPU kernels convert fp16 element by element, far below the read bandwidth; Q8_0 is dequantized on the
host), so it reads float32 bytes while llama.cpp reads the file's own F16 / Q8_0 bytes; the Q8_0 file is also run natively
(models.q8_linear: int8 values and float32 block scales, 1.125 bytes per weight; --q8). OMP_WAIT_POLICY defaults to PASSIVE
(see main). Needs the llamacpp extra
(`pip install llama-cpp-python`, a source build of about 10 minutes on 2 cores); without it llama.cpp is reported as not measured.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from tinybounty.hardware import load, machine
from tinybounty.models import decode_bench as db
from tinybounty.records import bench_command, format_row

# 190M parameters, 380 MB in f16 (the 374 MB model's size): 157M read per token (all but the embedding table), 314 MB f16
LLAMA_MID = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2560, num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4,
                 max_position_embeddings=2048, rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.05, eos_token_id=None,
                 pad_token_id=0, bos_token_id=None)


def write_files(path: Path, quants: list[str], seed: int = 0) -> None:
  """The random Llama as fp16 safetensors (path/hf) and as one GGUF per quant type (path/llama_QUANT.gguf), those absent."""
  import torch
  import transformers

  from tinybounty.models.gguf_write import write_llama_gguf
  todo = [q for q in quants if not (path / f"llama_{q}.gguf").is_file()]
  if (path / "hf" / "config.json").is_file() and not todo: return
  print(f"writing the checkpoint to {path} ...", file=sys.stderr)
  torch.manual_seed(seed)
  model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA_MID)).eval()
  with torch.no_grad():
    for p in model.parameters(): p.copy_(p.half().float())  # the fp16 values, so every file holds the same weights up to its quantization
  model.half().save_pretrained(path / "hf")
  model.float()
  for q in todo: write_llama_gguf(model, path / f"llama_{q}.gguf", q)


def time_llamacpp(llm, prompt: np.ndarray, steps: int, warmup: int = 3, name: str = "llama.cpp") -> tuple[db.DecodeTimes, list[int]]:
  """Greedy decode with llama.cpp: eval one token, argmax of its logits; per-step seconds and the tokens."""
  def last() -> int:  # the last token's logits, read in place (Llama.scores holds them only with logits_all)
    return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))))
  llm.reset()
  llm.eval(prompt[0].tolist())
  nxt, times, toks = last(), [], []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    llm.eval([nxt])
    nxt = last()
    if i >= warmup: times.append(time.perf_counter() - t0)
    toks.append(nxt)
  return db.DecodeTimes(name, times), toks


def file_bytes_per_token(path: Path) -> int:
  """Bytes of a GGUF's tensors that one decode step reads as stored (all but the embedding table, of which one row)."""
  from tinybounty.models.gguf import GGUFFile
  f = GGUFFile(path)
  return sum(i.nbytes // (i.shape[0] if n == "token_embd.weight" else 1) for n, i in f.tensors.items())


def merged(runs: list[db.DecodeTimes]) -> db.DecodeTimes:
  return db.DecodeTimes(runs[0].name, [s for r in runs for s in r.steps], runs[0].batch)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dir", default="/tmp/tinybounty_llama_gguf_mid", help="where the checkpoint files are (written if absent)")
  p.add_argument("--quant", nargs="+", default=["F16", "Q8_0"], choices=["F16", "Q8_0", "Q4_0", "F32"], help="GGUF types to measure")
  p.add_argument("--q8", nargs="+", default=["dequantize", "native"], choices=["dequantize", "native"],
                 help="how tinybounty runs the Q8_0 file: dequantized to float32 at load, and/or natively (models.q8_linear)")
  p.add_argument("--steps", type=int, default=16, help="timed decode steps per repeat")
  p.add_argument("--repeats", type=int, default=5, help="rounds; each times every contender once, in turn")
  p.add_argument("--prompt", type=int, default=8, help="prompt tokens")
  p.add_argument("--transformers-dtypes", nargs="*", default=["bfloat16", "float32"])
  p.add_argument("--skip-llamacpp", action="store_true")
  p.add_argument("--pause", type=float, default=1.0, help="seconds of sleep before each contender's turn")
  p.add_argument("--beam", type=int, default=0, help="BEAM width for tinybounty's decode kernels (tinygrad caches each choice on disk)")
  args = p.parse_args(argv)
  os.environ.setdefault("DEV", "CPU")
  # torch's and llama.cpp's OpenMP runtimes (two libgomp copies) spin-wait between parallel regions by default; in one process
  # on 2 cores each one's spinning threads slowed the other 10-20x (llama.cpp 0.4-24 tok/s, transformers 1.3-26 tok/s within
  # one run). Passive waiting (set before either loads) made every contender's rounds agree within a few percent.
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  import torch
  from tinygrad import Context, dtypes

  from tinybounty.models.generate import Generator
  from tinybounty.models.gguf_llama import load_gguf
  threads = os.cpu_count() or 1
  torch.set_num_threads(threads)
  path = Path(args.dir)
  write_files(path, args.quant)
  prompt = np.random.default_rng(0).integers(0, LLAMA_MID["vocab_size"], (1, args.prompt))
  ctx = args.prompt + max(args.steps + 3, 16) + 8  # warm-up steps, timed steps, the greedy tokens compared
  bandwidths = [db.read_bandwidth()]  # measured again after every round: the limit is the best seen (the machine is shared)

  # every contender is loaded first, then the repeats go round-robin (each repeat times every contender once), so a change
  # in the shared machine's load falls on all of them alike
  runners, per_token, ours_toks = {}, {}, {}
  variants = [(q, m) for q in args.quant for m in (args.q8 if q == "Q8_0" else ["dequantize"])]
  for q, mode in variants:
    model = load_gguf(path / f"llama_{q}.gguf", dtype=dtypes.float32, max_context=ctx, q8=mode)
    gen, per_token["tinybounty", q, mode] = Generator(model), model.bytes_per_token()
    def ours(gen=gen) -> db.DecodeTimes:
      with Context(BEAM=args.beam): return db.time_tinybounty(gen, prompt, args.steps)
    runners["tinybounty", q, mode] = ours
    with Context(BEAM=args.beam): ours_toks[q, mode] = [int(t[0]) for t in gen.greedy(prompt.tolist(), 16)]  # compiles (and searches)
  llama_toks = {}
  if not args.skip_llamacpp:
    try:
      import llama_cpp
    except ImportError as e:
      print(f"llama.cpp not measured: {e} (pip install llama-cpp-python)", file=sys.stderr)
    else:
      for q in args.quant:
        llm = llama_cpp.Llama(str(path / f"llama_{q}.gguf"), n_threads=threads, n_threads_batch=threads, n_ctx=ctx, n_batch=args.prompt,
                              verbose=False)
        per_token["llama.cpp", q] = file_bytes_per_token(path / f"llama_{q}.gguf")
        llama_toks[q] = time_llamacpp(llm, prompt, 15, warmup=0)[1]
        runners["llama.cpp", q] = lambda llm=llm: time_llamacpp(llm, prompt, args.steps)[0]
  for dt in args.transformers_dtypes:
    import transformers
    m = transformers.LlamaForCausalLM.from_pretrained(path / "hf", dtype=getattr(torch, dt)).eval()
    runners["transformers", dt] = lambda m=m, dt=dt: db.time_transformers(m, prompt, args.steps, name=f"transformers eager {dt}")
  times: dict[tuple, list[db.DecodeTimes]] = {k: [] for k in runners}
  for r in range(args.repeats):
    for k, fn in runners.items():
      time.sleep(args.pause)  # let the previous contender's worker threads go idle (they spin a while after work)
      times[k].append(fn())
    bandwidths.append(db.read_bandwidth(repeats=3))
    print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{' '.join(k)} {times[k][-1].median_tok_s:.2f}" for k in runners), flush=True)
  bandwidth = max(bandwidths)
  print(f"read bandwidth (tinygrad sum of 512 MB) per round: {', '.join(f'{b / 1e9:.2f}' for b in bandwidths)} GB/s; best {bandwidth / 1e9:.2f}")
  res = {k: merged(v) for k, v in times.items()}
  hf = [db.DecodeTimes(f"transformers eager {k[1]}", v.steps) for k, v in res.items() if k[0] == "transformers"]
  llama = {q: (res["llama.cpp", q], llama_toks[q], per_token["llama.cpp", q]) for q in args.quant if ("llama.cpp", q) in res}
  ours = {(q, mode): (res["tinybounty", q, mode], per_token["tinybounty", q, mode]) for q, mode in variants}

  where, cmd = f"{machine()} ({load()}, shared with other jobs)", bench_command("bench/llm_cpu_gguf.py", argv)
  print(f"\n=== Llama mid (190M parameters), batch 1, {args.repeats} x {args.steps} timed steps; {where}")
  rows = []
  for q, mode in variants:
    o, per_token = ours[q, mode]
    how = "Q8_0 projections run natively (int8 + float32 block scales)" if mode == "native" else "weights widened to float32"
    fig = (f"tinybounty {o.median_tok_s:.2f} tok/s median ({o.best_tok_s:.2f} best) from the {q} GGUF, {how} "
           f"({per_token / 1e6:.0f} MB/token), {o.median_tok_s * per_token / bandwidth:.0%} of the read-bandwidth limit ({bandwidth / 1e9:.2f} GB/s)")
    if q in llama:
      r, toks, nbytes = llama[q]
      same = sum(a == b for a, b in zip(ours_toks[q, mode][1:], toks))
      fig += (f"; {o.median_tok_s / r.median_tok_s:.2f}x llama.cpp {q} ({r.median_tok_s:.2f} tok/s median, {r.best_tok_s:.2f} best; "
              f"{nbytes / 1e6:.0f} MB/token {q}, {r.median_tok_s * nbytes / bandwidth:.0%} of the limit; first 15 greedy tokens equal {same}/15)")
    for r in hf: fig += f"; {o.median_tok_s / r.median_tok_s:.2f}x {r.name} ({r.median_tok_s:.2f} tok/s)"
    base = " and ".join(["llama.cpp (llama-cpp-python, same GGUF)"] * (q in llama) + ["transformers eager (same fp16 weights)"] * bool(hf))
    name = f"llm_cpu_gguf_llama_mid_{q.lower()}" + "_native" * (mode == "native")
    rows.append(format_row(name, where, cmd, fig, f"{base or 'none'}, same process"))
    print(fig)
  print("\n" + "\n".join(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
