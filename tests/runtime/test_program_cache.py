"""program_cache: reversible install, programs served from disk in a new process with stock's numbers, keys that split on
everything that changes a program (renderer, config, our codegen patches), and fallbacks on a broken or busy cache."""
import json
import os
import pickle
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from tinygrad import Device, Tensor, codegen, helpers
from tinygrad.engine import realize
from tinygrad.helpers import Context

from tinybounty.runtime import program_cache
from tinybounty.torch_backend import float_association

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# a child process: optionally our codegen patch, optionally the cache, then a few tiny kernels; prints numbers and stats
CHILD = """
import json, sys
import numpy as np
cache, patch, scale = sys.argv[1] == "1", sys.argv[2] == "1", float(sys.argv[3])
if patch:
  from tinybounty.torch_backend import float_association
  float_association.install()
from tinybounty.runtime import program_cache
if cache: program_cache.install()
from tinygrad import Tensor
a = Tensor(np.linspace(-1, 1, 96, dtype=np.float32).reshape(8, 12))
out = ((((a * scale) @ a.T).relu().contiguous() * 2).sum(1).contiguous() + a.exp().mean()).numpy()  # several kernels: the worker pool
print(json.dumps({"out": out.tolist(), "stats": program_cache.stats}))
"""


def child(db, cache=True, patch=False, scale=1.5, wait=True):
  env = {**os.environ, "CACHEDB": str(db), "PYTHONPATH": ROOT, "DEV": "CPU"}
  env.pop(program_cache.ENV_VAR, None)
  p = subprocess.Popen([sys.executable, "-c", CHILD, str(int(cache)), str(int(patch)), str(scale)], env=env, cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return finish(p) if wait else p


def finish(p):
  out, err = p.communicate(timeout=120)
  assert p.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def stock_after():
  yield
  program_cache.uninstall()


@pytest.fixture
def private_db(tmp_path, monkeypatch):
  """This process's tinygrad cache pointed at an empty sqlite file (restored after the test)."""
  monkeypatch.setattr(helpers, "CACHEDB", str(tmp_path / "cache.db"))
  monkeypatch.setattr(helpers, "_db_connection", None)
  monkeypatch.setattr(helpers, "_db_tables", set())
  yield tmp_path / "cache.db"
  if helpers._db_connection is not None: helpers._db_connection.close()


def test_install_uninstall_restore_the_same_dict_with_its_entries():
  stock = codegen.to_program_cache
  assert realize.to_program_cache is stock and not program_cache.installed()
  program_cache.install()
  program_cache.install()  # twice is harmless
  assert program_cache.installed() and isinstance(codegen.to_program_cache, program_cache.DiskProgramCache)
  assert realize.to_program_cache is codegen.to_program_cache
  dict.__setitem__(codegen.to_program_cache, ("marker",), None)
  program_cache.uninstall()
  assert codegen.to_program_cache is stock and realize.to_program_cache is stock and not program_cache.installed()
  assert ("marker",) in stock, "programs lowered while installed stay in tinygrad's own dict"
  del stock[("marker",)]
  program_cache.uninstall()  # twice is harmless
  assert codegen.to_program_cache is stock


def test_second_process_is_served_from_disk_with_stock_numbers(tmp_path):
  db = tmp_path / "cache.db"
  first = child(db)
  assert first["stats"]["writes"] >= 2 and first["stats"]["hits"] == 0
  second = child(db)
  assert second["stats"]["misses"] == 0 and second["stats"]["hits"] == first["stats"]["writes"], second["stats"]
  stock = child(tmp_path / "stock.db", cache=False)
  assert first["out"] == second["out"] == stock["out"]  # bit for bit


def test_program_cached_under_a_codegen_patch_is_not_served_without_it(tmp_path):
  db = tmp_path / "cache.db"
  patched = child(db, patch=True)
  assert patched["stats"]["writes"] >= 2
  plain = child(db, patch=False)
  assert plain["stats"]["hits"] == 0 and plain["stats"]["writes"] >= 2, "a program lowered with float_association leaked"
  assert child(db, patch=True)["stats"]["misses"] == 0 and child(db, patch=False)["stats"]["misses"] == 0  # each its own
  stock = child(tmp_path / "stock.db", cache=False)
  assert plain["out"] == stock["out"]


def test_two_processes_write_the_same_db_at_once(tmp_path):
  db = tmp_path / "cache.db"
  procs = [child(db, scale=s, wait=False) for s in (2.5, 2.5, 3.5)]
  runs = [finish(p) for p in procs]
  assert all(r["stats"]["errors"] == 0 for r in runs), [r["stats"] for r in runs]
  again = [child(db, scale=s) for s in (2.5, 3.5)]
  assert all(r["stats"]["misses"] == 0 and r["stats"]["hits"] > 0 for r in again)
  assert again[0]["out"] == runs[0]["out"] == runs[1]["out"] and again[1]["out"] == runs[2]["out"]


def _key():
  ren = Device["CPU"].renderer
  return (b"\x01" * 32, type(ren), ren.target, *[v.value for v in codegen.to_program_config])


def test_disk_key_splits_on_renderer_target_config_and_patches():
  base = program_cache.disk_key(k := _key())
  assert program_cache.disk_key(k) == base  # stable
  assert "renderer=tinygrad.renderer.cstyle.ClangRenderer" in base and "<class" not in base
  from tinygrad.renderer.llvmir import LLVMRenderer
  assert program_cache.disk_key((k[0], LLVMRenderer, *k[2:])) != base
  assert program_cache.disk_key((k[0], k[1], helpers.Target("CPU", "CLANG", "x86_64,znver4"), *k[3:])) != base
  assert program_cache.disk_key((b"\x02" * 32, *k[1:])) != base
  with Context(NOOPT=1 - codegen.to_program_config[0].value): assert program_cache.disk_key(_key()) != base
  with Context(TRANSCENDENTAL=3): assert program_cache.disk_key(_key()) != base
  with Context(TUPLE_ORDER=1 - helpers.TUPLE_ORDER.value): assert program_cache.disk_key(_key()) != base  # not in the config tuple
  was = float_association.installed()  # importing the torch backend installs it
  try:
    float_association.uninstall()
    without = program_cache.disk_key(k)
    float_association.install()
    with_patch = program_cache.disk_key(k)
  finally:
    (float_association.install if was else float_association.uninstall)()
  assert without != with_patch and "float_association=1" in with_patch and "float_association=0" in without
  for field in ("format=", "tinygrad=", "host=", "patches=", "config="): assert field in base


def _lower_fresh(scale):
  a = Tensor(np.arange(30, dtype=np.float32).reshape(5, 6))
  return ((a * scale).sum(0) + 1).numpy()


def test_corrupt_or_unreadable_entries_fall_back_to_lowering(private_db):
  program_cache.install()
  cache = codegen.to_program_cache
  expect = _lower_fresh(7.25)
  keys = [k for k in dict.keys(cache) if program_cache.disk_key(k) is not None]
  conn = sqlite3.connect(private_db)
  table = f"{program_cache.TABLE}_{helpers.VERSION}"
  rows = conn.execute(f"SELECT key, val FROM '{table}'").fetchall()
  assert rows
  # a bad blob, a valid pickle of the wrong thing, an entry whose stored key is another's
  dkey, digest, blob = pickle.loads(rows[0][1])
  bad = [b"not a pickle", pickle.dumps("garbage"), pickle.dumps((dkey + "x", digest, blob)), pickle.dumps((dkey, digest, blob[:-3]))]
  for i, val in enumerate(bad):
    conn.execute(f"UPDATE '{table}' SET val=?", (val,))
    conn.commit()
    dict.clear(cache)
    errors = program_cache.stats["errors"]
    assert not any(k in cache for k in keys), f"corrupt entry {i} served"
    assert program_cache.stats["errors"] > errors
  conn.close()
  dict.clear(cache)
  np.testing.assert_array_equal(_lower_fresh(7.25), expect)  # lowered again, same numbers


def test_a_busy_cache_is_a_miss(private_db, monkeypatch):
  def locked(*_a, **_k): raise sqlite3.OperationalError("database is locked")
  monkeypatch.setattr(program_cache, "diskcache_get", locked)
  monkeypatch.setattr(program_cache, "diskcache_put", locked)
  program_cache.install()
  np.testing.assert_array_equal(_lower_fresh(9.5), (np.arange(30, dtype=np.float32).reshape(5, 6) * 9.5).sum(0) + 1)
  assert program_cache.stats["errors"] > 0
