"""tinygrad's lowered programs kept on disk, so a new process does not lower the same kernels again.

tinygrad 0.14.0 turns every kernel AST into a compiled PROGRAM (`tinygrad.codegen.to_program`: optimize, linearize,
render, compile) once per process: its `to_program_cache` is a plain module dict. Only the compiler's binary is
disk-cached (keyed by source), so a new process still pays the whole codegen before it, in tinygrad's worker pool
(`engine.realize.lower_and_compile`). For short runs and multi-process tests (every torchrun rank lowers the same
kernels) that dominates.

`install()` replaces that dict, in `tinygrad.codegen` and in `tinygrad.engine.realize` (which imported the same
object), with a `DiskProgramCache`: a dict that, on a miss, looks the PROGRAM up in tinygrad's sqlite cache
(`helpers.diskcache_get`, so CACHEDB and CACHELEVEL apply) and writes every new entry through to it. `uninstall()`
puts the original dict object back, with every entry lowered meanwhile. `TINYBOUNTY_PROGRAM_CACHE=1` in the
environment makes `install_from_env()` install it.

A wrong cached program is a silent wrong result, so the disk key (`disk_key`) holds everything that can change the
program for the same AST, beyond tinygrad's own in-process key (ast.key, renderer class, target, `to_program_config`):
our format version, tinygrad's version, the host's CPU (CPU kernels are compiled for -march=native), the tinygrad
environment variables set in this process and the lowering's ContextVars outside to_program_config, and which of
our codegen-changing patches are installed (`PATCHES`).
Each entry repeats its full key string and a sha256 of its pickled program, checked on read; any error reading or
writing the cache (locked database, corrupt entry) falls back to lowering normally.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import platform
import sys
from typing import Any

from tinygrad import codegen
from tinygrad.engine import realize
from tinygrad.helpers import VERSION, ContextVar, diskcache_get, diskcache_put
from tinygrad.uop.ops import Ops, UOp

ENV_VAR = "TINYBOUNTY_PROGRAM_CACHE"
FORMAT = 1  # bump when the entry layout or the key's fields change
TABLE = f"tinybounty_program_v{FORMAT}"

# Our patches that change the PROGRAM tinygrad lowers for the SAME kernel AST (module, why). Patches that change the
# graph before the AST (gemm's Tensor.dot routing, the torch backend's ops) change ast.key and need no entry here;
# runtime-only patches (nv's QMD, cpugraph, threads' sqlite connection) do not touch the program; tinybounty.engine
# replaces the rewrite engine with a byte-identical one by design (tests/engine checks it), so it is left out.
PATCHES: tuple[tuple[str, str], ...] = (
  ("tinybounty.runtime.bf16_clang", "ClangRenderer renders bf16 as unsigned short"),
  ("tinybounty.runtime.rdna4", "AMD LLVM renderer gains gfx12 8-bit tensor cores (other opts, other code)"),
  ("tinybounty.torch_backend.half_rounding", "codegen keeps float->half->float rounding (pm_simplify_add_image)"),
  ("tinybounty.torch_backend.float_association", "ClangRenderer keeps the parentheses of float ADD/MUL operands"),
  ("tinybounty.models.matvec", "hand_coded_optimizations gives more reduces the matvec schedule"),
  ("tinybounty.validate.metadata", "the PROGRAM carries the kernel's op metadata (DEBUG names, profiling)"),
)

# ContextVars that only change what is printed or traced, never a program: left out of the key so they do not split it
_QUIET_VARS = frozenset({"DEBUG", "VIZ", "PROFILE", "NO_COLOR", "TRACEMETA", "TRACK_MATCH_STATS", "CAPTURE_PROCESS_REPLAY",
                         "CACHELEVEL", "CCACHE", "DEBUG_RANGEIFY", "SPEC", "CAPTURING"})
# ContextVars read while lowering that are not in to_program_config (so a Context() override of them would not be seen
# by an environment check): the linearizer's TUPLE_ORDER and the C-style renderers' FLOAT16; always in the key
_LOWERING_VARS = ("TUPLE_ORDER", "FLOAT16")
# plain getenv() names read while lowering (codegen, renderers, compilers, BEAM search, heuristics) in tinygrad 0.14.0
_CODEGEN_ENV = ("ALIGNED", "ALLOW_HALF8", "BEAM_ESTIMATE", "BEAM_LOCAL_MAX", "BEAM_MIN_PROGRESS", "BEAM_PADTO", "BEAM_STRICT_MODE",
                "BEAM_TIMEOUT_SEC", "BEAM_UOPS_MAX", "BEAM_UPCAST_MAX", "CC", "CUDA_PATH", "DMC", "EXPAND_SSA", "LLVMOPT", "MV",
                "MV_BLOCKSIZE", "MV_ROWS_PER_THREAD", "MV_THREADS_PER_ROW", "NOLOCALS", "NO_HIPCC", "OCCUPANCY_FLOOR",
                "ROCM_PATH", "TC", "TC_OPT", "THREADS")

_stock: dict[tuple, UOp] | None = None
stats = {"hits": 0, "misses": 0, "writes": 0, "errors": 0}


@functools.cache
def host() -> str:
  """The machine a native compile targets: architecture, CPU model and a hash of its feature flags."""
  model, flags = platform.processor(), ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        name, _, val = line.partition(":")
        name = name.strip()
        if name in ("model name", "Model", "CPU part") and not model.startswith("cpuinfo:"): model = "cpuinfo:" + val.strip()
        if name in ("flags", "Features") and not flags: flags = val.strip()
        if line.strip() == "": break  # the first processor is enough
  except OSError: pass
  return f"{platform.system()}/{platform.machine()}/{model}/{hashlib.sha256(flags.encode()).hexdigest()[:16]}"


@functools.cache
def _tinygrad_version() -> str:
  from importlib.metadata import version
  return f"{version('tinygrad')}/db{VERSION}/py{sys.version_info[0]}.{sys.version_info[1]}"


def patch_state() -> str:
  """Which codegen-changing patches of PATCHES are installed, as 'module=0|1' (a module not imported is not installed)."""
  return ",".join(f"{m.rsplit('.', 1)[-1]}={int(bool((mod := sys.modules.get(m)) is not None and mod.installed()))}" for m, _ in PATCHES)


def _environment() -> str:
  cvars = sorted(f"{k}={v.value!r}" for k, v in ContextVar._cache.items() if k in os.environ and k not in _QUIET_VARS)
  live = [f"{k}={ContextVar._cache[k].value!r}" for k in _LOWERING_VARS if k in ContextVar._cache]
  env = [f"{k}={os.environ[k]!r}" for k in _CODEGEN_ENV if k in os.environ]
  return ";".join(live + cvars + env)


def disk_key(key: tuple) -> str:
  """The stable string a to_program_key tuple is stored under (see the module doc for the fields)."""
  ast_key, renderer_type, target, *config = key
  names = [v.key for v in codegen.to_program_config]
  if len(names) != len(config): raise ValueError(f"to_program_key has {len(config)} config values, to_program_config {len(names)} names")
  return "\n".join([
    f"format={FORMAT}", f"tinygrad={_tinygrad_version()}", f"ast={ast_key.hex()}",
    f"renderer={renderer_type.__module__}.{renderer_type.__qualname__}", f"target={target!r}",
    "config=" + ";".join(f"{n}={v!r}" for n, v in zip(names, config)),
    f"host={host()}", f"env={_environment()}", f"patches={patch_state()}"])


def _load(dkey: str) -> UOp | None:
  try:
    entry = diskcache_get(TABLE, hashlib.sha256(dkey.encode()).hexdigest())
    if entry is None: return None
    stored_key, digest, blob = entry
    if stored_key != dkey or hashlib.sha256(blob).hexdigest() != digest: raise ValueError("entry does not match its key")
    prg = pickle.loads(blob)
    if not (isinstance(prg, UOp) and prg.op is Ops.PROGRAM and prg.src and prg.src[-1].op is Ops.BINARY): raise ValueError("not a compiled PROGRAM")
    return prg
  except Exception:  # noqa: BLE001 - a cache that cannot be read is a miss, never an error
    stats["errors"] += 1
    return None


def _store(dkey: str, prg: UOp) -> None:
  try:
    if not (prg.op is Ops.PROGRAM and prg.src and prg.src[-1].op is Ops.BINARY): return
    blob = pickle.dumps(prg)
    diskcache_put(TABLE, hashlib.sha256(dkey.encode()).hexdigest(), (dkey, hashlib.sha256(blob).hexdigest(), blob))
    stats["writes"] += 1
  except Exception:  # noqa: BLE001 - a cache that cannot be written costs a re-lowering later, never an error
    stats["errors"] += 1


class DiskProgramCache(dict):
  """tinygrad's to_program_cache, backed by disk: a miss in memory is looked up on disk, every new entry is written through."""

  def _fetch(self, key: Any) -> bool:
    if dict.__contains__(self, key): return True
    try: dkey = disk_key(key)
    except Exception:  # noqa: BLE001 - an unexpected key shape: in memory only
      stats["errors"] += 1
      return False
    if (prg := _load(dkey)) is None:
      stats["misses"] += 1
      return False
    stats["hits"] += 1
    dict.__setitem__(self, key, prg)
    return True

  def __contains__(self, key: object) -> bool: return self._fetch(key)

  def __getitem__(self, key: Any) -> UOp:
    self._fetch(key)
    return dict.__getitem__(self, key)

  def get(self, key: Any, default: Any = None) -> Any: return dict.__getitem__(self, key) if self._fetch(key) else default

  def __setitem__(self, key: Any, prg: UOp) -> None:
    if dict.get(self, key) is prg: return  # lower_and_compile stores what to_program already stored
    dict.__setitem__(self, key, prg)
    try: dkey = disk_key(key)
    except Exception:  # noqa: BLE001
      stats["errors"] += 1
      return
    _store(dkey, prg)


def installed() -> bool:
  """Whether install() is in effect."""
  return _stock is not None


def install() -> None:
  """Back tinygrad's to_program_cache with the disk, in codegen and in engine.realize (the same dict in both). Idempotent.

  Entries lowered before keep their place in memory (they are not written to disk). Reversed by uninstall()."""
  global _stock
  if installed(): return
  stock = codegen.to_program_cache
  if realize.to_program_cache is not stock: raise RuntimeError("tinygrad.engine.realize no longer shares codegen's to_program_cache")
  cache = DiskProgramCache()
  dict.update(cache, stock)
  codegen.to_program_cache = realize.to_program_cache = cache
  _stock = stock


def uninstall() -> None:
  """Put tinygrad's own dict object back, holding every program lowered meanwhile."""
  global _stock
  if not installed(): return
  assert _stock is not None
  cache = codegen.to_program_cache
  _stock.clear()
  _stock.update(dict.items(cache))
  codegen.to_program_cache = realize.to_program_cache = _stock
  _stock = None


def install_from_env() -> bool:
  """install() when TINYBOUNTY_PROGRAM_CACHE=1 is set; returns whether the cache is installed."""
  if os.environ.get(ENV_VAR, "0") == "1": install()
  return installed()

