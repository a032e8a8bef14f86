"""GGUF files written by the `gguf` package (llama.cpp's writer and quantizers) from a random transformers Llama: our
dequantization equals the package's, the loaded model's logits and greedy tokens equal transformers', the quantized
models equal transformers run on the same dequantized weights, and every way a file can be wrong is a clear error."""
import copy
import struct

import numpy as np
import pytest
from hf_reference import assert_logits_close, reference_greedy, reference_logits

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from tinygrad import Tensor, dtypes  # noqa: E402

from tinybounty.cli import main  # noqa: E402
from tinybounty.models.generate import Generator, load_causal_lm  # noqa: E402
from tinybounty.models.gguf import GGUFError, GGUFFile  # noqa: E402
from tinybounty.models.gguf_llama import load_gguf  # noqa: E402
from tinybounty.models.gguf_write import write_llama_gguf  # noqa: E402
from tinybounty.models.hf_checkpoint import CheckpointError  # noqa: E402
from tinybounty.models.q8_linear import Q8Linear  # noqa: E402

Q = gguf.GGMLQuantizationType
CONFIG = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=64, rope_theta=10000.0, tie_word_embeddings=False, eos_token_id=None, pad_token_id=0, bos_token_id=None)
IDS = np.random.default_rng(0).integers(0, CONFIG["vocab_size"], (2, 10))


@pytest.fixture(scope="module")
def hf():
  torch.manual_seed(0)
  return transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG)).eval()


@pytest.fixture(scope="module")
def files(hf, tmp_path_factory):
  d = tmp_path_factory.mktemp("gguf")
  return {qt: write_llama_gguf(hf, d / f"llama_{qt}.gguf", qt) for qt in ("F32", "F16", "Q8_0")}


def _logits(path, q8: str = "dequantize") -> np.ndarray:
  model = load_causal_lm(str(path), max_context=32, q8=q8)
  return model(Tensor(IDS, dtype=dtypes.int32), use_cache=False).float().numpy()


def _rounded(hf, qt):
  """transformers' model with every 2-D weight replaced by what the `gguf` package's quantizer and dequantizer make of it (the
  quantization acts on blocks of 32 along each row, so the GGUF's q/k row permutation commutes with it)."""
  ref = copy.deepcopy(hf)
  with torch.no_grad():
    for p in ref.parameters():
      if p.ndim == 2: p.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(p.numpy(), Q[qt]), Q[qt]).reshape(p.shape)))
  return ref


# ---- dequantization ----

def _random_blocks(qt, rows, rng):
  """Random quantized rows for a type whose quantizer the package may lack: random bytes, with every f16 scale set to finite values."""
  block, nbytes = gguf.GGML_QUANT_SIZES[qt]
  raw = rng.integers(0, 256, (rows, 512 // block, nbytes), dtype=np.uint8)
  scale_at = {Q.Q4_K: [0, 2], Q.Q6_K: [208]}[qt]
  for at in scale_at: raw[:, :, at:at+2] = rng.uniform(-0.1, 0.1, raw.shape[:2]).astype(np.float16)[..., None].view(np.uint8)
  return raw.reshape(rows, -1)


@pytest.mark.parametrize("qt", ["Q8_0", "Q4_0", "Q4_1", "BF16", "Q4_K", "Q6_K"])
def test_dequantize_equals_the_gguf_package(tmp_path, qt):
  rng = np.random.default_rng(1)
  x = rng.standard_normal((16, 512)).astype(np.float32)
  raw = gguf.quants.quantize(x, Q[qt]) if qt in ("Q8_0", "Q4_0", "Q4_1", "BF16") else _random_blocks(Q[qt], 16, rng)
  w = gguf.GGUFWriter(str(tmp_path / "t.gguf"), "llama")
  w.add_tensor("t", raw, raw_dtype=Q[qt])
  w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
  f = GGUFFile(tmp_path / "t.gguf")
  assert f.tensors["t"].shape == (16, 512) and f.tensors["t"].type_name == qt
  got = f.tensor("t")
  assert got.dtype == np.float32 and np.abs(got).max() > 0
  np.testing.assert_array_equal(got, gguf.quants.dequantize(raw, Q[qt]))


def test_q8_0_within_half_a_step_of_the_weights(hf, files):
  """Q8_0 stores q = round(x / d) with d = max|block| / 127 rounded to f16: |x - d16*q| <= d/2 + 127*|d - d16| <= d16 * (1/2 + 127/2048)
  (f16's relative rounding is at most 2^-11), up to d's own 2^-11."""
  f = GGUFFile(files["Q8_0"])
  want = hf.model.layers[1].mlp.down_proj.weight.detach().numpy()
  got = f.tensor("blk.1.ffn_down.weight")
  d16 = f.raw("blk.1.ffn_down.weight").reshape(-1, 34)[:, :2].copy().view(np.float16).astype(np.float32).reshape(want.shape[0], -1)
  bound = np.repeat(d16, 32, axis=1) * (0.5 + 127 / 2048) * (1 + 2 ** -11)
  err = np.abs(got - want)
  assert (err <= bound).all(), f"worst error {(err / bound).max():.3f} of the bound"
  assert err.max() > 0.1 * bound.max(), "the weights must actually be quantized"


# ---- the model ----

def test_f32_logits_and_greedy_tokens_equal_transformers(hf, files):
  assert_logits_close(_logits(files["F32"]), reference_logits(hf, IDS))
  model = load_causal_lm(str(files["F32"]), max_context=IDS.shape[1] + 32)  # the CLI test's context: its kernels are compiled once
  ours = np.stack(list(Generator(model).greedy(IDS[:1].tolist(), 32)), axis=1)
  np.testing.assert_array_equal(ours, reference_greedy(hf, IDS[:1], 32))


@pytest.mark.parametrize("qt,q8", [("F16", "dequantize"), ("Q8_0", "dequantize"), ("Q8_0", "native")])
def test_stored_types_equal_transformers_on_the_same_weights(hf, files, qt, q8):
  """An F16 or Q8_0 file's model is transformers' on the weights the file holds (float32 arithmetic on both sides: the 1e-4 bound);
  the quantization itself moves the logits by more than that, so the comparison would see a wrong dequantization. "native" keeps
  the Q8_0 projections as int8 + scales (Q8Linear): the same products, summed per block first."""
  if q8 == "native":
    model = load_gguf(files[qt], max_context=8, q8=q8)
    assert isinstance(model.layers[0].attention.wq, Q8Linear) and isinstance(model.output, Q8Linear)
    assert model.layers[0].w2.q.dtype == dtypes.int8
  got, ref = _logits(files[qt], q8), reference_logits(_rounded(hf, qt), IDS)
  assert_logits_close(got, ref)
  assert np.abs(ref - reference_logits(hf, IDS)).max() > 1e-4 * np.abs(ref).max(), "quantization too small to test anything"


def test_tied_embeddings(hf, tmp_path):
  tied = copy.deepcopy(hf)
  tied.lm_head.weight = tied.model.embed_tokens.weight
  tied.config.tie_word_embeddings = True
  path = write_llama_gguf(tied, tmp_path / "tied.gguf")
  assert "output.weight" not in GGUFFile(path)
  assert_logits_close(_logits(path), reference_logits(tied, IDS))


def test_llama3_rope_scaling(tmp_path):
  """Llama 3's RoPE scaling, stored as llama.cpp does (a rope_freqs.weight tensor of per-frequency divisors), whose frequencies
  span wavelengths below, inside and above its smoothing band."""
  rope = dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32)
  torch.manual_seed(1)
  hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**CONFIG, "rope_parameters": rope})).eval()
  path = write_llama_gguf(hf, tmp_path / "llama3.gguf")
  factors = GGUFFile(path).tensor("rope_freqs.weight")
  assert factors.min() == 1 and factors.max() == 8 and ((factors > 1) & (factors < 8)).any(), "all three bands, or the test proves little"
  assert_logits_close(_logits(path), reference_logits(hf, IDS))


def test_a_wrong_rotary_layout_is_seen(hf, tmp_path):
  """q/k written in transformers' rotate_half order (not permuted as llama.cpp's converter does) gives other logits."""
  path = write_llama_gguf(hf, tmp_path / "unpermuted.gguf", interleave=False)
  with pytest.raises(AssertionError): assert_logits_close(_logits(path), reference_logits(hf, IDS))


def test_generate_cli_streams_transformers_greedy_text(hf, files, tmp_path, capsys):
  path = tmp_path / files["F32"].name
  path.write_bytes(files["F32"].read_bytes())
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({f"w{i}": i for i in range(CONFIG["vocab_size"])}, unk_token="w0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  prompt = " ".join(f"w{i}" for i in IDS[0])
  assert main(["generate", str(path), "--prompt", prompt, "--max-new-tokens", "32"]) == 2  # no tokenizer.json yet
  assert "tokenizer.json is missing" in capsys.readouterr().err
  tok.save(str(tmp_path / "tokenizer.json"))
  assert main(["generate", str(path), "--prompt", prompt, "--max-new-tokens", "32", "--beam", "0"]) == 0
  want = reference_greedy(hf, IDS[:1], 32)[0].tolist()
  assert capsys.readouterr().out.strip() == tok.decode(IDS[0].tolist() + want)


# ---- bad files ----

def _patched(src, dst, at: int, data: bytes):
  b = bytearray(src.read_bytes())
  b[at:at + len(data)] = data
  dst.write_bytes(bytes(b))
  return dst


def test_bad_files_are_clear_errors(hf, files, tmp_path, capsys):
  good = files["F32"]
  with pytest.raises(FileNotFoundError, match="does not exist"): GGUFFile(tmp_path / "absent.gguf")
  (tmp_path / "a.gguf").write_bytes(b"PK\x03\x04 a zip file")
  with pytest.raises(GGUFError, match=r"a.gguf is not a GGUF file \(it starts with b'PK"): GGUFFile(tmp_path / "a.gguf")
  with pytest.raises(GGUFError, match="unsupported GGUF version 7"): GGUFFile(_patched(good, tmp_path / "v.gguf", 4, struct.pack("<I", 7)))
  with pytest.raises(GGUFError, match="big-endian"): GGUFFile(_patched(good, tmp_path / "be.gguf", 4, struct.pack(">I", 3)))
  (tmp_path / "cut.gguf").write_bytes(good.read_bytes()[:-100])
  with pytest.raises(GGUFError, match="truncated file: tensor 'blk.1.ffn_down.weight'"): GGUFFile(tmp_path / "cut.gguf")
  (tmp_path / "head.gguf").write_bytes(good.read_bytes()[:300])
  with pytest.raises(GGUFError, match="truncated file: metadata"): GGUFFile(tmp_path / "head.gguf")
  with pytest.raises(GGUFError, match="unknown architecture 'gpt2'"): load_causal_lm(str(write_llama_gguf(hf, tmp_path / "g.gguf", arch="gpt2")))
  with pytest.raises(GGUFError, match="has no tensor 'blk.2.attn_norm.weight'"):
    load_causal_lm(str(write_llama_gguf(hf, tmp_path / "n.gguf", metadata={"block_count": 3})), max_context=8)
  bad = write_llama_gguf(hf, tmp_path / "s.gguf", metadata={"feed_forward_length": 128})
  with pytest.raises(CheckpointError, match=r"layers.0.w1.weight: checkpoint shape \(96, 64\) does not match the shape \(128, 64\)"):
    load_causal_lm(str(bad), max_context=8)
  assert main(["generate", str(bad), "--prompt-ids", "1 2"]) == 2 and "does not match the shape" in capsys.readouterr().err
  assert main(["generate", str(tmp_path / "absent.gguf"), "--prompt-ids", "1 2"]) == 2 and "does not exist" in capsys.readouterr().err


def test_unsupported_tensor_type_is_named(tmp_path):
  w = gguf.GGUFWriter(str(tmp_path / "q5.gguf"), "llama")
  block, nbytes = gguf.GGML_QUANT_SIZES[Q.Q5_K]
  w.add_tensor("t", np.zeros((4, 512 // block * nbytes), np.uint8), raw_dtype=Q.Q5_K)
  w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
  f = GGUFFile(tmp_path / "q5.gguf")  # opening reads only the header
  with pytest.raises(GGUFError, match="tensor 't' has type Q5_K, which this reader cannot decode"): f.tensor("t")


def test_f16_file_keeps_half_projections_but_a_float32_residual_stream(files):
  """The F16 table would make every activation half; with the torch backend's half_rounding installed (which honours the
  half roundings stock tinygrad folds away) the logits then moved 1.4e-4 of scale off transformers' float32 ones."""
  model = load_causal_lm(str(files["F16"]), max_context=8)
  assert model.tok_embeddings.weight.dtype == dtypes.float and model.layers[0].attention.wq.weight.dtype == dtypes.half
