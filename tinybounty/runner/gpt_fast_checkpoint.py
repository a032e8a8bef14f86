"""Random-weight checkpoints in gpt-fast's converted format, and a sentencepiece tokenizer trained on local text.

pytorch-labs/gpt-fast's generate.py loads `<dir>/model.pth` (a state dict with its own key names) and
`<dir>/tokenizer.model` (sentencepiece), and picks the model shape from the directory's name (ModelArgs.from_name:
"stories15M", "stories110M", "7B", ...). This module writes both for those names without any download:

  python -m tinybounty.runner.gpt_fast_checkpoint --model stories15M --out checkpoints/stories15M

The shapes below restate gpt-fast's configs (our own table of the numbers; gpt-fast's code is not used). Weights are
drawn with one seeded CPU generator (std 0.02, RMSNorm weights 1, as a freshly initialised Llama), so a seed gives
the same checkpoint on every machine. Both files are written atomically.
"""
from __future__ import annotations

import argparse
import io
import pathlib
import sys
from dataclasses import dataclass

import torch
from tqdm import tqdm

from tinybounty.data.files import atomic_write


@dataclass(frozen=True)
class GptFastShape:
  """One of gpt-fast's ModelArgs, as its __post_init__ completes it."""
  n_layer: int
  n_head: int
  dim: int
  vocab_size: int = 32000
  n_local_heads: int = -1
  intermediate_size: int | None = None
  block_size: int = 2048

  @property
  def kv_heads(self) -> int: return self.n_head if self.n_local_heads == -1 else self.n_local_heads

  @property
  def head_dim(self) -> int: return self.dim // self.n_head

  @property
  def hidden(self) -> int:
    """The feed-forward width: given, or 2/3 of 4*dim rounded up to a multiple of 256 (Llama's rule, as gpt-fast computes it)."""
    if self.intermediate_size is not None: return self.intermediate_size
    n = int(2 * 4 * self.dim / 3)
    return n if n % 256 == 0 else n + 256 - n % 256


SHAPES: dict[str, GptFastShape] = {
  "stories15M": GptFastShape(n_layer=6, n_head=6, dim=288),
  "stories110M": GptFastShape(n_layer=12, n_head=12, dim=768),
  "7B": GptFastShape(n_layer=32, n_head=32, dim=4096),
  "Mistral-7B": GptFastShape(n_layer=32, n_head=32, dim=4096, n_local_heads=8, intermediate_size=14336),
}


def shape_of(name: str) -> GptFastShape:
  """The shape for a config name; ValueError listing the known ones otherwise."""
  if name not in SHAPES: raise ValueError(f"unknown gpt-fast config {name!r}; known: {', '.join(SHAPES)}")
  return SHAPES[name]


def random_state_dict(shape: GptFastShape, seed: int = 0, dtype: torch.dtype = torch.bfloat16, std: float = 0.02) -> dict[str, torch.Tensor]:
  """gpt-fast's Transformer state dict (its key names, wqkv fused as its converter writes it) with seeded random weights."""
  gen = torch.Generator().manual_seed(seed)
  def normal(*size: int) -> torch.Tensor: return (torch.randn(*size, generator=gen) * std).to(dtype)
  def ones(n: int) -> torch.Tensor: return torch.ones(n, dtype=dtype)
  qkv = (shape.n_head + 2 * shape.kv_heads) * shape.head_dim
  sd = {"tok_embeddings.weight": normal(shape.vocab_size, shape.dim)}
  for i in tqdm(range(shape.n_layer), desc="random layers", unit="layer", disable=shape.n_layer < 16, file=sys.stderr):
    p = f"layers.{i}."
    sd.update({p + "attention.wqkv.weight": normal(qkv, shape.dim), p + "attention.wo.weight": normal(shape.dim, shape.dim),
               p + "feed_forward.w1.weight": normal(shape.hidden, shape.dim), p + "feed_forward.w3.weight": normal(shape.hidden, shape.dim),
               p + "feed_forward.w2.weight": normal(shape.dim, shape.hidden),
               p + "ffn_norm.weight": ones(shape.dim), p + "attention_norm.weight": ones(shape.dim)})
  sd.update({"norm.weight": ones(shape.dim), "output.weight": normal(shape.vocab_size, shape.dim)})
  return sd


def local_text() -> str:
  """Training text for the tokenizer: the source files of this package (present wherever it is installed)."""
  root = pathlib.Path(__file__).resolve().parent.parent
  return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*.py")))


def train_tokenizer(path: str | pathlib.Path, vocab_size: int = 32000, learned: int = 2000, text: str | None = None) -> pathlib.Path:
  """A sentencepiece BPE model with exactly `vocab_size` pieces: about `learned` pieces learned from `text` (default:
  local_text()), the rest filler symbols, so that every id a `vocab_size`-logit model can emit decodes."""
  import sentencepiece as spm
  text = local_text() if text is None else text
  filler = [f"<f{i}>" for i in range(vocab_size - learned)]
  out = io.BytesIO()
  lines = iter([line for line in text.splitlines() if line.strip()])
  spm.SentencePieceTrainer.train(sentence_iterator=lines, model_writer=out, vocab_size=vocab_size, model_type="bpe",
                                 user_defined_symbols=filler, character_coverage=1.0, byte_fallback=False, num_threads=1,
                                 hard_vocab_limit=True, bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
  with atomic_write(path) as f: f.write(out.getvalue())
  return pathlib.Path(path)


def write_checkpoint(out_dir: str | pathlib.Path, name: str | None = None, seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> pathlib.Path:
  """Write `<out_dir>/model.pth` and `<out_dir>/tokenizer.model` for config `name` (default: out_dir's own name, which
  is where gpt-fast's generate.py reads it from). Returns the model.pth path."""
  out_dir = pathlib.Path(out_dir)
  name = name or out_dir.name
  shape = shape_of(name)
  if out_dir.name != name: print(f"note: gpt-fast picks the config from the directory name ({out_dir.name!r}), not {name!r}", file=sys.stderr)
  sd = random_state_dict(shape, seed, dtype)
  with atomic_write(out_dir / "model.pth") as f: torch.save(sd, f)
  if not (out_dir / "tokenizer.model").exists(): train_tokenizer(out_dir / "tokenizer.model", shape.vocab_size)
  return out_dir / "model.pth"


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m tinybounty.runner.gpt_fast_checkpoint", description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True, choices=sorted(SHAPES), help="gpt-fast config name")
  p.add_argument("--out", type=pathlib.Path, help="output directory (default checkpoints/<model>; gpt-fast reads the config from its name)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
  a = p.parse_args(argv)
  path = write_checkpoint(a.out or pathlib.Path("checkpoints") / a.model, a.model, a.seed, getattr(torch, a.dtype))
  print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
