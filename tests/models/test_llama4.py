"""Llama 4 (text) loaded from a sharded transformers checkpoint equals transformers' Llama4ForCausalLM (float32, small
config with chunked RoPE layers, a NoPE layer with temperature tuning, MoE and dense layers interleaved, Llama 3 RoPE
scaling): full-forward logits on both MoE paths past a chunk boundary, cached decode logits, 32 greedy tokens at batch 1 and 8."""
import numpy as np
import pytest
from hf_reference import assert_logits_close, reference_greedy, reference_logits, write_checkpoint

transformers = pytest.importorskip("transformers")
from tinygrad import Tensor, dtypes  # noqa: E402

from tinybounty.models.generate import Generator  # noqa: E402
from tinybounty.models.llama4 import load_llama4  # noqa: E402

# floor_scale 4 makes the NoPE layer's temperature change within the test's positions; chunk 8 puts a boundary in the prompt
CONFIG = dict(vocab_size=211, hidden_size=64, intermediate_size=32, intermediate_size_mlp=48, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, num_local_experts=8, interleave_moe_layer_step=2, attention_chunk_size=8,
              floor_scale=4, attn_scale=0.5, initializer_range=0.1, eos_token_id=None, pad_token_id=0, bos_token_id=None,
              rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp("llama4")
  cfg = transformers.Llama4TextConfig(**CONFIG)
  assert cfg.layer_types == ["chunked_attention"] * 3 + ["full_attention"] and cfg.moe_layers == [1, 3]
  return path, write_checkpoint(transformers.Llama4ForCausalLM, cfg, path)


@pytest.mark.parametrize("mode", ["gather", "dense"])
def test_full_forward_matches_transformers(checkpoint, mode):
  path, ref = checkpoint
  ids = np.random.default_rng(0).integers(0, CONFIG["vocab_size"], (2, 13))
  model = load_llama4(str(path), max_context=64)
  model.set_moe_mode(mode)
  assert_logits_close(model(Tensor(ids, dtype=dtypes.int32), use_cache=False).numpy(), reference_logits(ref, ids))


def test_cached_decode_matches_transformers(checkpoint):
  path, ref = checkpoint
  ids = np.random.default_rng(1).integers(0, CONFIG["vocab_size"], (3, 12))
  gen = Generator(load_llama4(str(path), max_context=64))
  steps = [gen.prefill(Tensor(ids[:, :6], dtype=dtypes.int32)).numpy()]
  for pos in range(6, 12): steps.append(gen.decode(Tensor(ids[:, pos:pos + 1], dtype=dtypes.int32), pos).numpy()[:, None])
  assert_logits_close(np.concatenate(steps, axis=1), reference_logits(ref, ids))


@pytest.mark.parametrize("batch", [1, 8])
def test_greedy_tokens_match_transformers(checkpoint, batch):
  path, ref = checkpoint
  ids = np.random.default_rng(2 + batch).integers(0, CONFIG["vocab_size"], (batch, 5))
  gen = Generator(load_llama4(str(path), max_context=64))
  ours = np.stack(list(gen.greedy(ids.tolist(), 32)), axis=1)
  np.testing.assert_array_equal(ours, reference_greedy(ref, ids, 32))
  assert len(np.unique(ours)) > 3, "a constant continuation would prove little"
