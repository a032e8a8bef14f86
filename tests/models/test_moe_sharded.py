"""OLMoE and Llama 4 sharded over two tinygrad CPU devices (attention by heads, experts by expert, `Tensor.shard`) give the
same logits as on one device: full forward, cached prefill and a JIT'd decode step."""
import numpy as np
import pytest
from hf_reference import write_checkpoint

transformers = pytest.importorskip("transformers")
from tinygrad import Tensor, dtypes  # noqa: E402

from tinybounty.models.generate import Generator, load_causal_lm  # noqa: E402
from tinybounty.models.moe_blocks import shard_model  # noqa: E402

pytestmark = pytest.mark.long  # two models compiled on two CPU devices: minutes

DEVICES = ("CPU:1", "CPU:2")
OLMOE = dict(vocab_size=97, hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             num_experts=8, num_experts_per_tok=2, initializer_range=0.1, eos_token_id=None, pad_token_id=0)
LLAMA4 = dict(vocab_size=97, hidden_size=32, intermediate_size=16, intermediate_size_mlp=24, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=8, num_local_experts=4, interleave_moe_layer_step=2, attention_chunk_size=4, floor_scale=2,
              initializer_range=0.1, eos_token_id=None, pad_token_id=0, bos_token_id=None)


@pytest.mark.parametrize("arch", ["olmoe", "llama4"])
def test_sharded_logits_equal_one_device(tmp_path, arch):
  cls, cfg_cls, cfg = {"olmoe": (transformers.OlmoeForCausalLM, transformers.OlmoeConfig, OLMOE),
                       "llama4": (transformers.Llama4ForCausalLM, transformers.Llama4TextConfig, LLAMA4)}[arch]
  write_checkpoint(cls, cfg_cls(**cfg), tmp_path, shard="16KB")
  ids = np.random.default_rng(0).integers(0, cfg["vocab_size"], (2, 9))

  def run(model):
    gen = Generator(model)
    full = model(Tensor(ids, dtype=dtypes.int32), use_cache=False).numpy()
    steps = [gen.prefill(Tensor(ids[:, :6], dtype=dtypes.int32)).numpy()]
    for pos in range(6, 9): steps.append(gen.decode(Tensor(ids[:, pos:pos + 1], dtype=dtypes.int32), pos).numpy()[:, None])
    return full, np.concatenate(steps, axis=1)

  one_full, one_cached = run(load_causal_lm(str(tmp_path), max_context=16))
  model = load_causal_lm(str(tmp_path), max_context=16)
  shard_model(model, DEVICES)
  assert model.lm_head.weight.device == DEVICES
  assert model.model.layers[1].self_attn.q_proj.weight.uop.axis == 0
  sharded_full, sharded_cached = run(model)
  scale = np.abs(one_full).max()
  np.testing.assert_allclose(sharded_full, one_full, atol=1e-5 * scale, rtol=0)  # float32 reassociation of the split sums only
  np.testing.assert_allclose(sharded_cached, one_cached, atol=1e-5 * scale, rtol=0)
  np.testing.assert_allclose(one_cached, one_full, atol=1e-5 * scale, rtol=0)


def test_devices_must_divide_heads_and_experts(tmp_path):
  write_checkpoint(transformers.OlmoeForCausalLM, transformers.OlmoeConfig(**OLMOE), tmp_path)
  with pytest.raises(ValueError, match="must divide"): shard_model(load_causal_lm(str(tmp_path), max_context=8), ("CPU:1", "CPU:2", "CPU:3"))
