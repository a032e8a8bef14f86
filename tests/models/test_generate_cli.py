"""`tinybounty generate` on a checkpoint directory written by transformers (with a tokenizer.json): the streamed text is
transformers' greedy continuation; a missing directory, an unknown architecture and a wrong shape are clear errors."""
import json
import shutil

import numpy as np
import pytest
from hf_reference import reference_greedy, write_checkpoint

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from tinybounty.cli import main  # noqa: E402

CONFIG = dict(vocab_size=53, hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              num_experts=8, num_experts_per_tok=2, initializer_range=0.1, eos_token_id=None, pad_token_id=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp("olmoe_cli")
  ref = write_checkpoint(transformers.OlmoeForCausalLM, transformers.OlmoeConfig(**CONFIG), path, shard="8KB")
  vocab = {f"w{i}": i for i in range(CONFIG["vocab_size"])}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.save(str(path / "tokenizer.json"))
  return path, ref, tok


def test_generate_streams_transformers_greedy_text(checkpoint, capsys):
  path, ref, tok = checkpoint
  assert main(["generate", str(path), "--prompt", "w3 w17 w5 w40", "--max-new-tokens", "12", "--beam", "0"]) == 0
  out, err = capsys.readouterr()
  want = reference_greedy(ref, np.array([[3, 17, 5, 40]]), 12)[0].tolist()
  assert out.strip() == tok.decode([3, 17, 5, 40] + want)
  assert "tok/s" in err and "loading" in err


def test_generate_errors(tmp_path, checkpoint, capsys):
  path = checkpoint[0]
  assert main(["generate", str(tmp_path / "absent"), "--prompt-ids", "1 2"]) == 2
  assert "does not exist" in capsys.readouterr().err
  d = shutil.copytree(path, tmp_path / "arch")
  (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "architectures": ["GPTJForCausalLM"]}))
  assert main(["generate", str(d), "--prompt-ids", "1 2"]) == 2
  assert "unknown architecture 'GPTJForCausalLM'" in capsys.readouterr().err
  d = shutil.copytree(path, tmp_path / "shape")
  (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()), "hidden_size": 48}))
  assert main(["generate", str(d), "--prompt-ids", "1 2"]) == 2
  assert "does not match the shape" in capsys.readouterr().err


def test_kernel_choices_are_searched_unless_asked_not_to():
  import argparse

  from tinybounty.models.generate_cli import add_parser
  sub = argparse.ArgumentParser().add_subparsers()
  add_parser(sub)
  parse = sub.choices["generate"].parse_args
  assert parse(["ckpt", "--prompt-ids", "1"]).beam == 2 and parse(["ckpt", "--prompt-ids", "1", "--beam", "0"]).beam == 0
