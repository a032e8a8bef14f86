"""Exports run in a real headless Chromium (WebGPU on SwiftShader) and give tinygrad's numbers."""
import numpy as np
import pytest
from tinygrad import Tensor, TinyJit

from tinybounty.export.examples import max_abs_diff as max_diff
from tinybounty.export.webgpu import export_model

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("name", ["mnist_export", "resnet_export", "gpt2_export"])
def test_model_matches_tinygrad_in_browser(name, browser, request):
  exp = request.getfixturevalue(name)
  res = browser.run_model(exp.export.out_dir.name, *exp.steps)
  assert res["precision"] == "f32"
  assert max_diff(res["outputs"], exp.outputs) <= 1e-4


def test_gpt2_decodes_the_same_tokens_with_a_symbolic_position(gpt2_export, browser):
  assert len(gpt2_export.steps) == 8 and [s[1] for s in gpt2_export.steps] == list(range(8))
  assert gpt2_export.export.plan["inputs"][1] == {"name": "start_pos", "kind": "var", "min": 0, "max": 31}
  res = browser.run_model("gpt2", *gpt2_export.steps)
  tokens = [int(np.argmax(o[0])) for o in res["outputs"]]
  assert tokens == [int(o[0].argmax()) for o in gpt2_export.outputs]
  assert [int(s[0][0, 0]) for s in gpt2_export.steps[1:]] == tokens[:-1]  # each step fed the previous step's token


def test_weights_stream_with_progress_then_come_from_the_cache(mnist_export, browser):
  first = browser.run_model("mnist", *mnist_export.steps)
  second = browser.run_model("mnist", *mnist_export.steps)
  assert first["loaded"] == first["total"] == mnist_export.export.weight_bytes
  assert second["loaded"] == second["total"] and second["cached"] >= 1
  assert max_diff(second["outputs"], mnist_export.outputs) <= 1e-4


def test_f16_export_falls_back_to_f32_kernels_without_shader_f16(mnist16_export, browser):
  assert "shader-f16" not in browser.adapter()["features"], "this adapter has shader-f16: test the f16 kernels here instead"
  res = browser.run_model("mnist16", *mnist16_export.steps)
  assert res["precision"] == "f32"
  assert max_diff(res["outputs"], mnist16_export.rounded) <= 1e-4
  assert any("float32 fallback" in line for line in browser.console)


def test_forcing_f16_without_shader_f16_is_a_clear_error(mnist16_export, browser):
  err = browser.error("mnist16", precision="f16")
  assert "shader-f16" in err and "precision 'auto'" in err
  assert "exported in float32" in browser.error("mnist", precision="f16")


def test_sharded_weights_load(browser, web_root):
  rng = np.random.default_rng(0)
  w1, w2, b = (Tensor(rng.standard_normal(s).astype(np.float32)) for s in ((64, 32), (32, 8), (8,)))
  x = Tensor(rng.standard_normal((2, 64)).astype(np.float32)).realize()
  e = export_model(TinyJit(lambda x: ((x @ w1).gelu() @ w2 + b).softmax()), x, out_dir=web_root / "sharded", shard_bytes=4096)
  assert len(e.plan["weights"]["files"]) == 2  # w1 (8 KiB) alone, then w2 and b
  res = browser.run_model("sharded", [x.numpy()])
  assert max_diff(res["outputs"], [[((x @ w1).gelu() @ w2 + b).softmax().numpy()]]) <= 1e-6


def test_two_exports_on_one_page_do_not_collide(mnist_export, resnet_export, browser):
  outs = browser.page.evaluate("""async ({base, a, b}) => {
    const [{ default: A }, { default: B }] = await Promise.all([import(base + "mnist/model.js"), import(base + "resnet18/model.js")]);
    const [ma, mb] = await Promise.all([A.load(base + "mnist/"), B.load(base + "resnet18/")]);
    const [oa, ob] = await Promise.all([ma.run([Float32Array.from(a)]), mb.run([Float32Array.from(b)])]);
    return [Array.from(oa[0]), Array.from(ob[0])];
  }""", {"base": browser.base, "a": mnist_export.steps[0][0].flatten().tolist(), "b": resnet_export.steps[0][0].flatten().tolist()})
  assert max_diff([[outs[0]], [outs[1]]], [mnist_export.outputs[0], resnet_export.outputs[0]]) <= 1e-4


def test_bad_inputs_are_named(mnist_export, gpt2_export, browser):
  err = browser.page.evaluate("""async ({url, n}) => { const { default: M } = await import(url + "model.js"); const m = await M.load(url);
    const errs = [];
    for (const args of [[new Float32Array(n - 1)], [new Int32Array(n)], []]) {
      try { await m.run(args); errs.push(""); } catch (e) { errs.push(String(e)); }
    }
    return errs; }""", {"url": browser.base + "mnist/", "n": 784})
  assert "input0 must be a Float32Array of 784 elements" in err[0] and "got Float32Array of 783" in err[0]
  assert "got Int32Array" in err[1] and "needs 1 inputs" in err[2]
  err = browser.page.evaluate("""async (url) => { const { default: M } = await import(url + "model.js"); const m = await M.load(url);
    try { await m.run([new Int32Array([1]), 32]); return ""; } catch (e) { return String(e); } }""", browser.base + "gpt2/")
  assert "start_pos must be an integer in [0, 31], got 32" in err


def test_half_conversions_match_numpy(mnist_export, browser):
  xs = np.array([0, -0.0, 1, -2.5, 65504, 70000, 1e-8, 6e-8, 5.96e-8, 1e-5, 3.14159, -1e-3, 2049, 2051, np.inf, -np.inf], np.float32)
  got = browser.page.evaluate("""async ({url, xs}) => { const r = await import(url);
    return xs.map(x => [r.floatToHalf(x), r.halfToFloat(r.floatToHalf(x))]); }""", {"url": browser.base + "mnist/runtime.js", "xs": xs.tolist()})
  with np.errstate(over="ignore"): want = xs.astype(np.float16)  # 70000 overflows to inf, as it must
  assert [g[0] for g in got] == want.view(np.uint16).tolist()
  np.testing.assert_array_equal(np.array([g[1] for g in got], np.float32), want.astype(np.float32))


def test_demo_page_runs_and_is_screenshotted(mnist_export, browser, tmp_path_factory):
  png = tmp_path_factory.mktemp("screenshots") / "webgpu-demo.png"
  res = browser.screenshot_demo("mnist", png)
  assert "error" not in res, res.get("error")
  assert max_diff([res["outputs"]], mnist_export.outputs) <= 1e-4
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
