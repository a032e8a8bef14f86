"""One headless Chromium (WebGPU on SwiftShader) and one export of each model for the whole session: exports are the slow part."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from tinygrad import Tensor, dtypes
from tinygrad.nn.state import get_state_dict

from tinybounty.export.browser import HeadlessChromium
from tinybounty.export.examples import EXAMPLES, Example, round_to_half
from tinybounty.export.webgpu import Export, export_model


@dataclass
class Exported:
  example: Example
  export: Export
  steps: list[list]
  outputs: list[list[np.ndarray]]  # tinygrad on the CPU


@pytest.fixture(scope="session")
def web_root(tmp_path_factory):
  return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="session")
def browser(web_root):
  with HeadlessChromium(web_root) as b:
    assert b.adapter() is not None, "headless chromium gave no WebGPU adapter (needs --enable-unsafe-webgpu and SwiftShader)"
    yield b


def _export(name: str, web_root, **kw) -> Exported:
  ex = EXAMPLES[name]()
  e = export_model(ex.jit, *ex.example_inputs, out_dir=web_root / name, **kw)
  return Exported(ex, e, *ex.reference())


@pytest.fixture(scope="session")
def mnist_export(web_root): return _export("mnist", web_root)
@pytest.fixture(scope="session")
def resnet_export(web_root): return _export("resnet18", web_root)
@pytest.fixture(scope="session")
def gpt2_export(web_root): return _export("gpt2", web_root)


@dataclass
class Exported16:
  steps: list[list]
  rounded: list[list[np.ndarray]]  # float32 compute on the float16-rounded weights: what the f32 fallback must give
  half: list[list[np.ndarray]]     # tinygrad's own float16 compute: what the f16 kernels must give


@pytest.fixture(scope="session")
def mnist16_export(web_root) -> Exported16:
  ex = EXAMPLES["mnist"](seed=3)
  export_model(ex.jit, *ex.example_inputs, out_dir=web_root / "mnist16", dtype="float16")
  round_to_half(ex.model)
  steps, rounded = ex.reference()
  for t in get_state_dict(ex.model).values():
    if t.dtype == dtypes.float32: t.replace(t.cast(dtypes.float16).contiguous().realize())
  half = [[ex.model(Tensor(x).cast(dtypes.float16)).float().numpy() for x in step] for step in steps]
  return Exported16(steps, rounded, half)

