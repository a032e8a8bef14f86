"""`torch.compile(backend="tiny")` is known right after importing the device, and with no import at all once the
package is installed (its torch_dynamo_backends entry point). Each case runs in a fresh interpreter: dynamo's backend
registry is process-wide."""
import os
import pathlib
import subprocess
import sys
import textwrap
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]

COMPILE_ON_TINY = """
f = torch.compile(lambda x: (x * 2).sum(), backend="tiny")
assert f(torch.arange(4.0).to("tiny")).cpu().item() == 12.0
"""


def _run(*parts: str, extra_path: str = "") -> None:
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)}
  res = subprocess.run([sys.executable, "-c", "\n".join(textwrap.dedent(p) for p in parts)], env=env, capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-3000:]


def test_importing_the_device_registers_the_backend_without_loading_dynamo():
  _run("""
    import sys, torch, tinybounty.torch_backend
    assert "torch._dynamo" not in sys.modules  # registering costs no dynamo import
  """, COMPILE_ON_TINY, """
    from tinybounty.torch_backend import dynamo
    from torch._dynamo.backends import registry
    dynamo.uninstall()  # reversible
    assert "tiny" not in registry._COMPILER_FNS
    dynamo.install()
  """, COMPILE_ON_TINY)


def test_the_entry_point_alone_registers_the_backend(tmp_path):
  # what `pip install` writes for the [project.entry-points] table: a dist-info with entry_points.txt
  eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["torch_dynamo_backends"]
  assert eps == {"tiny": "tinybounty.torch_backend.dynamo:tiny"}
  info = tmp_path / "tinybounty_entry_probe-0.dist-info"
  info.mkdir()
  (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinybounty-entry-probe\nVersion: 0\n")
  (info / "entry_points.txt").write_text("[torch_dynamo_backends]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
  _run("""
    import sys, torch
    assert "tinybounty" not in sys.modules
  """, COMPILE_ON_TINY, """
    assert "tinybounty.torch_backend" in sys.modules
  """, extra_path=str(tmp_path))
