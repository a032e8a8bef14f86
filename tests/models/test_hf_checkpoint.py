"""Hugging Face checkpoint loading: stored dtypes (bf16, fp16, fp32) load to the values transformers wrote, and every way a
directory can be wrong is an error naming the problem."""
import json
import shutil

import numpy as np
import pytest
from hf_reference import write_checkpoint

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
from tinygrad import dtypes  # noqa: E402

from tinybounty.models.generate import load_causal_lm  # noqa: E402
from tinybounty.models.hf_checkpoint import Checkpoint, CheckpointError  # noqa: E402
from tinybounty.models.olmoe import load_olmoe  # noqa: E402

CONFIG = dict(vocab_size=53, hidden_size=16, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2, num_experts=4,
              num_experts_per_tok=2, eos_token_id=None, pad_token_id=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp("olmoe_small")
  return path, write_checkpoint(transformers.OlmoeForCausalLM, transformers.OlmoeConfig(**CONFIG), path, shard="4KB")


@pytest.mark.parametrize("stored", [torch.bfloat16, torch.float16, torch.float32])
def test_stored_dtypes_load_exactly(tmp_path, checkpoint, stored):
  _, ref = checkpoint
  ref.to(stored).save_pretrained(tmp_path, max_shard_size="4KB")
  model = load_olmoe(str(tmp_path), max_context=8)
  want = ref.model.layers[0].mlp.experts.down_proj.detach().to(stored)  # transformers' fused (E, D, I) view of the experts
  got = model.model.layers[0].mlp.experts.down_proj
  assert got.dtype == (dtypes.float32 if stored == torch.bfloat16 else {torch.float16: dtypes.float16, torch.float32: dtypes.float32}[stored])
  np.testing.assert_array_equal(got.float().numpy(), want.float().numpy())
  ref.to(torch.float32)


def _copy(src, dst):
  shutil.copytree(src, dst, dirs_exist_ok=True)
  return dst


def test_missing_directory_config_and_shard(tmp_path, checkpoint):
  path, _ = checkpoint
  with pytest.raises(FileNotFoundError, match="does not exist"): Checkpoint(tmp_path / "nope")
  with pytest.raises(FileNotFoundError, match="config.json"): Checkpoint(tmp_path)
  d = _copy(path, tmp_path / "c")
  next(d.glob("model-00002-*.safetensors")).unlink()
  with pytest.raises(FileNotFoundError, match="model-00002"): Checkpoint(d)


def test_unknown_architecture(tmp_path, checkpoint):
  d = _copy(checkpoint[0], tmp_path / "c")
  cfg = json.loads((d / "config.json").read_text())
  (d / "config.json").write_text(json.dumps({**cfg, "architectures": ["MambaForCausalLM"]}))
  with pytest.raises(ValueError, match="unknown architecture 'MambaForCausalLM'"): load_causal_lm(str(d))


def test_shape_that_does_not_match_the_config(tmp_path, checkpoint):
  d = _copy(checkpoint[0], tmp_path / "c")
  cfg = json.loads((d / "config.json").read_text())
  (d / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 12}))
  with pytest.raises(CheckpointError, match=r"experts.gate_proj: checkpoint shape \(4, 8, 16\) does not match .* \(4, 12, 16\)"):
    load_olmoe(str(d), max_context=8)


def test_missing_tensor(tmp_path, checkpoint):
  d = _copy(checkpoint[0], tmp_path / "c")
  index = json.loads((d / "model.safetensors.index.json").read_text())
  del index["weight_map"]["model.norm.weight"]
  (d / "model.safetensors.index.json").write_text(json.dumps(index))
  with pytest.raises(CheckpointError, match="model.norm.weight"): load_olmoe(str(d), max_context=8)


def test_bf16_is_kept_when_asked(tmp_path, checkpoint):
  """dtype=bfloat16 copies the stored bf16 bits as they are (the GPU decode reads half the bytes of float32)."""
  from tinygrad import Device
  if Device.DEFAULT == "CPU" and type(Device["CPU"].renderer).__name__ == "ClangRenderer":
    pytest.skip("tinygrad 0.14's clang renderer cannot compile a bf16 copy kernel ('__bf16 is not supported on this target'); DEV=CPU:LLVM can")
  _, ref = checkpoint
  ref.to(torch.bfloat16).save_pretrained(tmp_path, max_shard_size="4KB")
  model = load_olmoe(str(tmp_path), dtype=dtypes.bfloat16, max_context=8)
  pairs = ((model.model.layers[0].mlp.experts.down_proj, ref.model.layers[0].mlp.experts.down_proj), (model.lm_head.weight, ref.lm_head.weight))
  for got, want in pairs:
    assert got.dtype == dtypes.bfloat16
    np.testing.assert_array_equal(got.bitcast(dtypes.uint16).numpy(), want.detach().view(torch.int16).numpy().view(np.uint16))
  ref.to(torch.float32)


def test_active_bytes_per_token_matches_the_loaded_model(checkpoint):
  """The bench's analytic bytes per batch-1 token (embedding row, attention, norms, router, top-k experts, lm_head) equal
  what the loaded model's own state dict adds up to."""
  from tinybounty.models.decode_device import active_bytes_per_token
  path, _ = checkpoint
  model = load_olmoe(str(path), dtype=dtypes.float32, max_context=8)
  assert active_bytes_per_token(CONFIG, itemsize=4) == model.bytes_per_token()
