"""OLMoE loaded from a sharded transformers checkpoint equals transformers' OlmoeForCausalLM (float32, small config):
full-forward logits on both MoE paths, cached prefill + JIT'd decode logits, and 32 greedy tokens at batch 1 and 8."""
import numpy as np
import pytest
from hf_reference import assert_logits_close, reference_greedy, reference_logits, write_checkpoint

transformers = pytest.importorskip("transformers")
from tinygrad import Tensor, dtypes  # noqa: E402

from tinybounty.models.generate import Generator  # noqa: E402
from tinybounty.models.olmoe import load_olmoe  # noqa: E402

CONFIG = dict(vocab_size=211, hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              num_experts=16, num_experts_per_tok=4, initializer_range=0.1, eos_token_id=None, pad_token_id=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp("olmoe")
  ref = write_checkpoint(transformers.OlmoeForCausalLM, transformers.OlmoeConfig(**CONFIG), path)
  return path, ref


def test_sharded_checkpoint_is_read(checkpoint):
  path, _ = checkpoint
  assert (path / "model.safetensors.index.json").is_file() and len(list(path.glob("model-*.safetensors"))) > 1


@pytest.mark.parametrize("mode", ["gather", "dense"])
def test_full_forward_matches_transformers(checkpoint, mode):
  path, ref = checkpoint
  ids = np.random.default_rng(0).integers(0, CONFIG["vocab_size"], (2, 12))
  model = load_olmoe(str(path), max_context=64)
  model.set_moe_mode(mode)
  assert_logits_close(model(Tensor(ids, dtype=dtypes.int32), use_cache=False).numpy(), reference_logits(ref, ids))


def test_cached_decode_matches_transformers(checkpoint):
  path, ref = checkpoint
  ids = np.random.default_rng(1).integers(0, CONFIG["vocab_size"], (3, 10))
  gen = Generator(load_olmoe(str(path), max_context=64))
  steps = [gen.prefill(Tensor(ids[:, :6], dtype=dtypes.int32)).numpy()]
  for pos in range(6, 10): steps.append(gen.decode(Tensor(ids[:, pos:pos + 1], dtype=dtypes.int32), pos).numpy()[:, None])
  assert_logits_close(np.concatenate(steps, axis=1), reference_logits(ref, ids))


@pytest.mark.parametrize("batch", [1, 8])
def test_greedy_tokens_match_transformers(checkpoint, batch):
  path, ref = checkpoint
  ids = np.random.default_rng(2 + batch).integers(0, CONFIG["vocab_size"], (batch, 5))
  gen = Generator(load_olmoe(str(path), max_context=64))
  ours = np.stack(list(gen.greedy(ids.tolist(), 32)), axis=1)
  np.testing.assert_array_equal(ours, reference_greedy(ref, ids, 32))
  assert len(np.unique(ours)) > 3, "a constant continuation would prove little"
