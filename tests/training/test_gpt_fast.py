"""gpt-fast on the tiny device: checkpoints in its format, our same-op-mix script through the runner (greedy tokens equal
to PyTorch CPU's), and gpt-fast's own generate.py where its checkout is present ($GPT_FAST_DIR or ext/gpt-fast)."""
import os

import numpy as np
import pytest
import torch

from tinybounty import engine
from tinybounty.runner import gpt_fast_checkpoint as ckpt
from tinybounty.runner.gpt_fast import SCRIPTS, agreement, forced_logits, generate, gpt_fast_checkout

TOKENS = int(os.environ.get("GPT_FAST_TEST_TOKENS", "8"))  # the registry check and bench/gpt_fast.py run 32


@pytest.fixture(scope="module", autouse=True)
def fast_engine():
  """Kernels lowered by tinybounty.engine (stock's byte for byte, tests/engine): scheduling a stories110M token's graph
  is most of a cold decode on the 2-core CI machine (8.4 s against 1.9 s for the last token's)."""
  with engine.enabled():
    yield


@pytest.fixture(scope="module")
def stories15m(tmp_path_factory):
  return ckpt.write_checkpoint(tmp_path_factory.mktemp("ckpt") / "stories15M")


def test_checkpoint_has_gpt_fast_keys_and_shapes(stories15m):
  sd = torch.load(stories15m, weights_only=True)
  s = ckpt.SHAPES["stories15M"]
  assert len(sd) == 2 + 1 + 7 * s.n_layer
  assert sd["layers.0.attention.wqkv.weight"].shape == (3 * s.dim, s.dim) and sd["layers.5.feed_forward.w2.weight"].shape == (s.dim, 768)
  assert sd["tok_embeddings.weight"].dtype == torch.bfloat16 and torch.equal(sd["norm.weight"], torch.ones(s.dim, dtype=torch.bfloat16))
  import sentencepiece as spm
  sp = spm.SentencePieceProcessor(str(stories15m.parent / "tokenizer.model"))
  assert sp.vocab_size() == s.vocab_size and sp.bos_id() == 1 and sp.DecodeIds(sp.EncodeAsIds("def flush(self):")) == "def flush(self):"
  sp.DecodeIds(list(range(s.vocab_size - 10, s.vocab_size)))  # every id a model can emit decodes
  if (d := gpt_fast_checkout()) is not None:  # gpt-fast's own model takes it strictly
    import sys
    sys.path.insert(0, str(d))
    try:
      from model import Transformer
      with torch.device("meta"): m = Transformer.from_name("stories15M")
      m.load_state_dict(sd, assign=True, strict=True)
    finally: sys.path.remove(str(d))


def test_unknown_config_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown gpt-fast config"): ckpt.shape_of("stories1B")


@pytest.mark.slow
def test_gpt_fast_like_greedy_tokens_equal_cpu(stories15m, tiny):
  script = SCRIPTS / "gpt_fast_like.py"
  ref = generate(script, "cpu", stories15m, max_new_tokens=TOKENS)
  got = generate(script, "tiny", stories15m, max_new_tokens=TOKENS)
  # equal, or parted at a near-tie of the random-weight model (where step capture's cuts change a bf16 rounding)
  agree = agreement(ref.tokens, got.tokens, lambda which, prefix: forced_logits(script, "cpu" if which == "ref" else "tiny", stories15m, prefix))
  assert len(ref.tokens) > TOKENS and agree.ok, str(agree)
  assert len(got.tokens_per_s) == 1 and got.tokens_per_s[0] > 0


@pytest.fixture(scope="module")
def stories110m(tmp_path_factory):
  return ckpt.write_checkpoint(tmp_path_factory.mktemp("ckpt") / "stories110M")


@pytest.mark.slow
@pytest.mark.parametrize("model,mode", [("stories15M", "compile"), ("stories110M", "eager"), ("stories110M", "compile"),
                                        ("stories15M", "int8")])
def test_gpt_fast_like_compiled_larger_and_int8_equal_cpu(model, mode, request, tiny, fresh_dynamo):
  """--compile (gpt-fast's reduce-overhead decode routed to the tiny backend) on stories15M, the stories110M shape eager
  and compiled, and int8 weight-only linears, each against PyTorch CPU eager running the same script: the same greedy
  tokens, or a parting where the CPU's own logit gap is a near-tie (agreement())."""
  checkpoint = request.getfixturevalue(model.lower())
  script = SCRIPTS / "gpt_fast_like.py"
  extra = ["--int8"] if mode == "int8" else None
  ref = generate(script, "cpu", checkpoint, max_new_tokens=TOKENS, extra=extra)
  got = generate(script, "tiny", checkpoint, max_new_tokens=TOKENS, compile=mode == "compile", extra=extra)
  agree = agreement(ref.tokens, got.tokens,
                    lambda which, prefix: forced_logits(script, "cpu" if which == "ref" else "tiny", checkpoint, prefix, int8=mode == "int8"))
  assert len(ref.tokens) > TOKENS and agree.ok, str(agree)


@pytest.mark.slow
@pytest.mark.skipif(gpt_fast_checkout() is None, reason="gpt-fast checkout absent (set GPT_FAST_DIR or fetch it into ext/gpt-fast)")
def test_gpt_fast_generate_unmodified_equal_cpu(stories15m, tiny):
  script = gpt_fast_checkout() / "generate.py"
  ref = generate(script, "cpu", stories15m, max_new_tokens=TOKENS)
  got = generate(script, "tiny", stories15m, max_new_tokens=TOKENS)
  assert len(ref.tokens) > TOKENS and got.tokens == ref.tokens


def _forced(gap: float, noise: float, ref_tok: int = 3, got_tok: int = 5):
  """Teacher-forced logits where the reference prefers `ref_tok` over `got_tok` by `gap`, the other device off by `noise`."""
  def forced(which: str, prefix: list[int]) -> np.ndarray:
    logits = np.zeros((len(prefix), 8), np.float32)
    logits[-1, ref_tok], logits[-1, got_tok] = gap, 0.0
    return logits + (noise if which == "got" else 0.0) * np.eye(8, dtype=np.float32)[got_tok]
  return forced


def test_agreement_separates_near_ties_from_real_disagreements():
  ref, got = [1, 2, 3, 4], [1, 2, 5, 4]
  assert agreement(ref, ref).ok and agreement(ref, ref).position is None
  tie = agreement(ref, got, _forced(gap=0.01, noise=0.008))
  assert tie.ok and tie.tie and tie.position == 2 and tie.gap == pytest.approx(0.01) and tie.difference == pytest.approx(0.008)
  real = agreement(ref, got, _forced(gap=1.0, noise=0.008))
  assert not real.ok and "NOT a near-tie" in str(real)
  assert not agreement(ref, got).ok, "a difference nobody analysed is never called a tie"
  assert not agreement(ref, ref[:3]).ok, "a shorter run is not equal"
