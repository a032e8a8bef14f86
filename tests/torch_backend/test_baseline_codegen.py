"""The switch that compiles tinygrad's CPU kernels for a baseline x86-64 instead of the host CPU (docs/correctness.md,
"Tests on any x86-64"): tinygrad 0.14.0's CPU device passes `x86_64,native` (-march=native to clang, the host's CPU
name and features to LLVM) unless DEV names an arch, as in DEV=CPU:CLANG:x86_64,x86-64 or DEV=CPU:LLVM:x86_64,x86-64.
Here: that setting reaches both compilers, and the code clang makes under it has no AVX or FMA where native has them."""
import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the switch is for x86-64 hosts")

PROBE = r'''
import ctypes, json, subprocess, tempfile
from tinygrad import Device
r = Device["CPU"].renderer
out = {"renderer": type(r).__name__, "arch": r.target.arch}
if out["renderer"] == "ClangRenderer":
  src = "void f(float* restrict a, const float* restrict b, const float* restrict c) { for (int i = 0; i < 1024; i++) a[i] = a[i] * b[i] + c[i]; }"
  with tempfile.NamedTemporaryFile(suffix=".o") as f:
    f.write(r.compiler.compile(src)); f.flush()
    out["asm"] = subprocess.run(["objdump", "-d", f.name], capture_output=True, text=True, check=True).stdout
else:
  from tinygrad.runtime.autogen import llvm
  out["cpu"] = ctypes.string_at(llvm.LLVMGetTargetMachineCPU(r.compiler.target_machine)).decode()
  out["features"] = ctypes.string_at(llvm.LLVMGetTargetMachineFeatureString(r.compiler.target_machine)).decode()
print(json.dumps(out))
'''


def _probe(dev: str) -> dict:
  env = {**os.environ, "DEV": dev}
  p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  return json.loads(p.stdout.splitlines()[-1])


def _host_has(*flags: str) -> bool:
  with open("/proc/cpuinfo") as f: have = set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
  return set(flags) <= have


def test_clang_baseline_has_no_avx_or_fma():
  base = _probe("CPU:CLANG:x86_64,x86-64")
  assert base["arch"] == "x86_64,x86-64" and base["asm"].count("mulps") > 0       # the loop is there, vectorized with SSE
  assert "ymm" not in base["asm"] and "vfmadd" not in base["asm"]
  if _host_has("avx2", "fma"):                                                     # and the switch changes something here
    native = _probe("CPU")
    assert native["arch"] == "x86_64,native" and ("vfmadd" in native["asm"] or "ymm" in native["asm"])


def test_llvm_baseline_targets_plain_x86_64():
  base = _probe("CPU:LLVM:x86_64,x86-64")
  assert base["cpu"] == "x86-64" and "+avx" not in base["features"] and "+fma" not in base["features"]
  native = _probe("CPU:LLVM")
  assert native["cpu"] not in ("", "x86-64") and (not _host_has("fma") or "+fma" in native["features"])
