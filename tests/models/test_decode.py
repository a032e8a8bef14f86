"""KV-cache decoding, token by token, gives the same logits as one full-sequence forward (GPT-2 and Llama)."""
import numpy as np
import pytest
from tinygrad import Tensor, UOp

from tinybounty.models.gpt2 import GPT2, GPT2Config
from tinybounty.models.llama import Llama, LlamaConfig

PROMPT, TOTAL = 4, 8


@pytest.mark.parametrize("make", [lambda: GPT2(GPT2Config.tiny()), lambda: Llama(LlamaConfig.tiny())], ids=["gpt2", "llama"])
def test_cached_decode_matches_full_forward(make):
  model = make()
  tokens = Tensor.randint(2, TOTAL, high=model.cfg.vocab_size).realize()
  full = model(tokens, use_cache=False).numpy()
  steps = [model(tokens[:, :PROMPT], 0).numpy()]  # prefill: causal mask over the prompt
  for pos in range(PROMPT, TOTAL):  # one step at an int position, then a bound symbolic start_pos
    start_pos = pos if pos == PROMPT else UOp.variable("start_pos", 1, model.cfg.max_seq_len - 1).bind(pos)
    steps.append(model(tokens[:, pos:pos+1], start_pos).numpy())
  np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-4, rtol=1e-4)
  assert np.abs(full[:, 0] - full[:, -1]).max() > 1e-3, "positions must matter, or the test proves nothing"


def test_start_pos_out_of_range_is_an_error():
  model = GPT2(GPT2Config.tiny())
  with pytest.raises(ValueError, match="max_seq_len"): model(Tensor.zeros(1, 2, dtype="int32"), model.cfg.max_seq_len - 1)
