"""MLPerf BERT shards: written and read back, bad files named; a resumed run equals an unbroken one; the CLI trains."""
import dataclasses

import h5py
import numpy as np
import pytest

from tinybounty.data.bert_shards import FIELDS, ShardError, load_shards, read_shard, stdlib_text, vocab_size_of, write_shards
from tinybounty.mlperf.bert_train import BertRun, train_bert
from tinybounty.mlperf.checkpoint import CheckpointError
from tinybounty.mlperf.lamb import LambConfig
from tinybounty.models.bert_pretrain import BertPretrainConfig

pytestmark = pytest.mark.long  # two jitted BERT training runs, interrupted and unbroken: minutes


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
  d = tmp_path_factory.mktemp("bert_shards")
  write_shards(stdlib_text()[:12000], d, seq_len=32, max_pred=5, n_shards=2, dupe=2)
  return d


def test_shards_have_mlperf_layout(shards):
  data = load_shards(shards)
  n, T = data["input_ids"].shape
  assert T == 32 and data["masked_lm_positions"].shape == (n, 5) and set(data) == set(FIELDS)
  assert (data["input_ids"][:, 0] == 2).all(), "every sample starts with [CLS]"
  real = data["masked_lm_positions"] != 0
  assert real.any(axis=1).all() and (data["masked_lm_ids"][~real] == 0).all()
  picked = np.take_along_axis(data["input_mask"], data["masked_lm_positions"], 1)
  assert (picked[real] == 1).all(), "predictions sit on real tokens"
  assert 0.2 < data["next_sentence_labels"].mean() < 0.8


def test_bad_files_are_named(shards, tmp_path):
  with pytest.raises(ShardError, match="no such shard"): read_shard(tmp_path / "nope.hdf5")
  with pytest.raises(ShardError, match="no \\*.hdf5 shards"): load_shards(tmp_path)
  (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
  with pytest.raises(ShardError, match="not a readable HDF5"): read_shard(tmp_path / "junk.hdf5")
  src = read_shard(next(shards.glob("*.hdf5")))
  with h5py.File(tmp_path / "short.hdf5", "w") as f:
    for k in FIELDS[:-1]: f[k] = src[k]
  with pytest.raises(ShardError, match="missing dataset.*next_sentence_labels"): read_shard(tmp_path / "short.hdf5")
  with h5py.File(tmp_path / "pos.hdf5", "w") as f:
    for k in FIELDS: f[k] = src[k] + (99 if k == "masked_lm_positions" else 0)
  with pytest.raises(ShardError, match="masked_lm_positions outside"): read_shard(tmp_path / "pos.hdf5")
  with pytest.raises(ShardError, match="vocab_size 10"): load_shards(shards, vocab_size=10)


def test_resumed_run_equals_unbroken(shards, tmp_path):
  cfg = BertPretrainConfig.tiny(vocab_size_of(shards))  # dropout 0.1: the RNG state must travel in the checkpoint too
  run = BertRun(steps=5, batch_size=4, model=cfg, lamb=LambConfig(lr=3e-2, warmup_steps=2, total_steps=5), dtype="float16")
  unbroken = train_bert(run, shards, tmp_path / "a", progress=False)
  train_bert(dataclasses.replace(run, steps=2), shards, tmp_path / "b", progress=False)
  resumed = train_bert(run, shards, tmp_path / "b", resume=True, progress=False)
  assert [r["step"] for r in resumed] == [2, 3, 4]
  assert [r["loss"] for r in resumed] == [r["loss"] for r in unbroken[2:]]
  assert len({r["loss"] for r in unbroken}) == 5 and all(r["taken"] for r in unbroken)
  final = [(tmp_path / d / "bert.safetensors").read_bytes() for d in "ab"]
  assert final[0] == final[1], "the final checkpoints are identical byte for byte"
  with pytest.raises(CheckpointError, match="different run.*seed"):
    train_bert(dataclasses.replace(run, seed=1), shards, tmp_path / "b", resume=True, progress=False)
  with pytest.raises(CheckpointError, match="no checkpoint"): train_bert(run, shards, tmp_path / "c", resume=True, progress=False)
