"""MLPerf BERT pretraining shards (HDF5): writing them from a text, reading and validating them.

MLPerf's `create_pretraining_data.py` output, one HDF5 file per shard, with these datasets (N samples, T = max_seq_length,
P = max_predictions_per_seq; 512 and 76 in the benchmark):
  input_ids (N, T), input_mask (N, T), segment_ids (N, T), masked_lm_positions (N, P), masked_lm_ids (N, P),
  next_sentence_labels (N,): all integers. Masking is static (done when writing); unused prediction slots hold 0.
Our writer follows the same recipe on a small text with a word-level vocabulary (vocab.txt beside the shards, BERT's
special tokens first): [CLS] A [SEP] B [SEP], B the true continuation or (label 1) a random other span, 15% of the
tokens predicted (80% [MASK], 10% random, 10% kept).

  python -m tinybounty.data.bert_shards --text corpus.txt --out shards/ [--seq-len 64 --shards 2 --dupe 5]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re

import numpy as np

FIELDS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids", "next_sentence_labels")
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(5)


class ShardError(ValueError):
  """A shard that is missing, unreadable, or not in MLPerf's layout."""


def tokenize(text: str) -> list[list[list[str]]]:
  """Text -> documents (blank-line separated) -> sentences -> lower-cased word and punctuation tokens."""
  docs = []
  for para in re.split(r"\n\s*\n", text):
    sents = [re.findall(r"[a-z0-9]+|[^\sa-z0-9]", s.lower()) for s in re.split(r"(?<=[.!?])\s+", para.strip())]
    if sents := [s for s in sents if s]: docs.append(sents)
  return docs


def _instances(docs: list[list[list[int]]], seq_len: int, max_pred: int, vocab_size: int, rng: np.random.Generator) -> list[tuple]:
  budget = seq_len - 3
  out = []
  for di, doc in enumerate(docs):
    i = 0
    while i < len(doc):
      # segment A: one or more whole sentences; B: the next sentences, or with probability 1/2 a span of another document
      n_a = int(rng.integers(1, max(2, len(doc) - i)))
      a = [t for s in doc[i:i + n_a] for t in s]
      random_next = len(docs) > 1 and (i + n_a >= len(doc) or rng.random() < 0.5)
      if random_next:
        other = docs[int(rng.choice([j for j in range(len(docs)) if j != di]))]
        start = int(rng.integers(0, len(other)))
        b = [t for s in other[start:start + 2] for t in s]
      else:
        b = [t for s in doc[i + n_a:i + n_a + 2] for t in s]
      i += n_a + (0 if random_next else 2)
      if not b: continue
      while len(a) + len(b) > budget:  # truncate the longer segment, from the front or the back at random, as the reference
        seg = a if len(a) > len(b) else b
        seg.pop(0 if rng.random() < 0.5 else -1)
      tokens = [CLS, *a, SEP, *b, SEP]
      segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
      cand = [k for k, t in enumerate(tokens) if t not in (CLS, SEP)]
      n_pred = min(max_pred, max(1, round(0.15 * len(tokens))))
      positions = sorted(rng.choice(cand, size=min(n_pred, len(cand)), replace=False).tolist())
      labels = [tokens[k] for k in positions]
      for k in positions:
        r = rng.random()
        tokens[k] = MASK if r < 0.8 else (int(rng.integers(len(SPECIALS), vocab_size)) if r < 0.9 else tokens[k])
      out.append((tokens, segments, positions, labels, int(random_next)))
  return out


def build_samples(text: str, seq_len: int = 64, max_pred: int = 10, dupe: int = 5, seed: int = 0) -> tuple[list[str], dict[str, np.ndarray]]:
  """The vocabulary and every sample (shuffled) of `text` as MLPerf's six arrays, in memory (no HDF5): what write_shards stores."""
  if seq_len < 8: raise ValueError(f"seq_len {seq_len} is too short for [CLS] A [SEP] B [SEP]")
  docs = tokenize(text)
  if not docs: raise ValueError("the text has no sentences")
  vocab = list(SPECIALS) + sorted({w for d in docs for s in d for w in s})
  index = {w: i for i, w in enumerate(vocab)}
  ids = [[[index[w] for w in s] for s in d] for d in docs]
  rng = np.random.default_rng(seed)
  inst = [x for _ in range(dupe) for x in _instances(ids, seq_len, max_pred, len(vocab), rng)]
  inst = [inst[i] for i in rng.permutation(len(inst))]
  arr = {f: np.zeros((len(inst), seq_len if f in FIELDS[:3] else max_pred), dtype=np.int32) for f in FIELDS[:5]}
  arr["next_sentence_labels"] = np.zeros(len(inst), dtype=np.int8)
  for n, (tok, seg, pos, lab, nsp) in enumerate(inst):
    arr["input_ids"][n, :len(tok)], arr["input_mask"][n, :len(tok)], arr["segment_ids"][n, :len(seg)] = tok, 1, seg
    arr["masked_lm_positions"][n, :len(pos)], arr["masked_lm_ids"][n, :len(lab)] = pos, lab
    arr["next_sentence_labels"][n] = nsp
  return vocab, arr


def write_shards(text: str, out_dir: str | os.PathLike, seq_len: int = 64, max_pred: int = 10, n_shards: int = 2, dupe: int = 5,
                 seed: int = 0) -> list[pathlib.Path]:
  """Write MLPerf-layout HDF5 shards and vocab.txt from `text`; `dupe` re-masks the text that many times (the reference's dupe_factor)."""
  import h5py
  vocab, arr = build_samples(text, seq_len, max_pred, dupe, seed)
  if len(arr["input_ids"]) < n_shards: raise ValueError(f"the text gives {len(arr['input_ids'])} samples, fewer than {n_shards} shards")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
  paths = []
  for s in range(n_shards):
    path = out_dir / f"part_{s:05d}_of_{n_shards:05d}.hdf5"
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
      for k, v in arr.items(): f.create_dataset(k, data=v[s::n_shards], compression="gzip")
    with open(tmp, "rb+") as f: os.fsync(f.fileno())
    os.replace(tmp, path)
    paths.append(path)
  return paths


def read_shard(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """One shard's six arrays (int32), after checking names, ranks, matching lengths and value ranges."""
  import h5py
  path = pathlib.Path(path)
  if not path.is_file(): raise ShardError(f"{path}: no such shard file")
  try:
    with h5py.File(path, "r") as f:
      if missing := [k for k in FIELDS if k not in f]:
        raise ShardError(f"{path}: missing dataset(s) {', '.join(missing)} (MLPerf shards hold {', '.join(FIELDS)})")
      arr = {k: f[k][()] for k in FIELDS}
  except OSError as e:
    raise ShardError(f"{path}: not a readable HDF5 file ({e})") from None
  for k, v in arr.items():
    if v.dtype.kind not in "iub": raise ShardError(f"{path}: {k} has dtype {v.dtype}, expected integers")
    if v.ndim != (1 if k == "next_sentence_labels" else 2): raise ShardError(f"{path}: {k} has shape {v.shape}")
  n = len(arr["input_ids"])
  if any(len(v) != n for v in arr.values()):
    raise ShardError(f"{path}: datasets disagree on the sample count: {({k: len(v) for k, v in arr.items()})}")
  if not arr["input_ids"].shape == arr["input_mask"].shape == arr["segment_ids"].shape:
    raise ShardError(f"{path}: input_ids/input_mask/segment_ids shapes differ")
  if arr["masked_lm_positions"].shape != arr["masked_lm_ids"].shape: raise ShardError(f"{path}: masked_lm_positions and masked_lm_ids shapes differ")
  T = arr["input_ids"].shape[1]
  if n and (arr["masked_lm_positions"].min() < 0 or arr["masked_lm_positions"].max() >= T):
    raise ShardError(f"{path}: masked_lm_positions outside [0, {T})")
  if n and not np.isin(arr["next_sentence_labels"], (0, 1)).all(): raise ShardError(f"{path}: next_sentence_labels must be 0 or 1")
  return {k: v.astype(np.int32) for k, v in arr.items()}


def load_shards(data_dir: str | os.PathLike, vocab_size: int | None = None) -> dict[str, np.ndarray]:
  """Every *.hdf5 / *.h5 shard in `data_dir`, concatenated in name order; ids are checked against `vocab_size` if given."""
  data_dir = pathlib.Path(data_dir)
  if not data_dir.is_dir(): raise ShardError(f"{data_dir}: no such data directory")
  paths = sorted([*data_dir.glob("*.hdf5"), *data_dir.glob("*.h5")])
  if not paths: raise ShardError(f"{data_dir}: no *.hdf5 shards (write some with python -m tinybounty.data.bert_shards)")
  shards = [read_shard(p) for p in paths]
  if len({s["input_ids"].shape[1] for s in shards}) > 1: raise ShardError(f"{data_dir}: shards have different sequence lengths")
  data = {k: np.concatenate([s[k] for s in shards]) for k in FIELDS}
  if vocab_size is not None and data["input_ids"].max(initial=0) >= vocab_size:
    raise ShardError(f"{data_dir}: token id {data['input_ids'].max()} >= the model's vocab_size {vocab_size}")
  return data


def vocab_size_of(data_dir: str | os.PathLike) -> int | None:
  """Number of lines in data_dir/vocab.txt, or None without one."""
  p = pathlib.Path(data_dir) / "vocab.txt"
  return len(p.read_text().splitlines()) if p.is_file() else None


# modules whose documentation makes the default corpus when no --text is given (always installed with Python)
STDLIB_DOC_MODULES = ("argparse", "collections", "csv", "datetime", "decimal", "email", "fractions", "functools", "heapq", "http.client",
                      "itertools", "json", "logging", "pathlib", "pickle", "random", "re", "shutil", "socket", "sqlite3", "statistics",
                      "string", "subprocess", "tarfile", "textwrap", "threading", "unittest", "urllib.parse", "zipfile")


def stdlib_text() -> str:
  """A small English corpus without downloading anything: the docstrings of some standard-library modules and their classes."""
  import importlib
  import inspect
  docs = []
  for name in STDLIB_DOC_MODULES:
    mod = importlib.import_module(name)
    docs.append(inspect.getdoc(mod) or "")
    docs += [inspect.getdoc(obj) or "" for _, obj in sorted(vars(mod).items()) if inspect.isclass(obj) and obj.__module__ == name]
  return "\n\n".join(d.replace("\n\n", "\n") for d in docs if len(d) > 200)


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description="Write MLPerf-layout BERT pretraining shards (HDF5) from a text file.")
  ap.add_argument("--text", help="UTF-8 text; blank lines separate documents (default: Python standard-library docstrings)")
  ap.add_argument("--out", required=True)
  ap.add_argument("--seq-len", type=int, default=64)
  ap.add_argument("--max-pred", type=int, default=10)
  ap.add_argument("--shards", type=int, default=2)
  ap.add_argument("--dupe", type=int, default=5)
  ap.add_argument("--seed", type=int, default=0)
  a = ap.parse_args(argv)
  paths = write_shards(pathlib.Path(a.text).read_text() if a.text else stdlib_text(), a.out, a.seq_len, a.max_pred, a.shards, a.dupe, a.seed)
  print(f"wrote {len(paths)} shards and vocab.txt ({vocab_size_of(a.out)} words) to {a.out}")
  return 0


if __name__ == "__main__": raise SystemExit(main())
