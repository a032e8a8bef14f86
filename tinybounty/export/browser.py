"""Run WebGPU exports in a real headless Chromium (Playwright driving the system chromium), served from 127.0.0.1.

  with HeadlessChromium(root) as b:            # root: a folder holding export folders
    outs = b.run_model("mnist", [x_numpy])     # numpy arrays and ints in the exported input order -> numpy outputs
"""
from __future__ import annotations

import functools
import http.server
import os
import pathlib
import shutil
import threading
from typing import Any

import numpy as np

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-default-apps"]
HARNESS = "<!doctype html><meta charset='utf-8'><link rel='icon' href='data:,'><title>tinybounty webgpu harness</title><body></body>"
RUN_JS = """async ({url, inputs, precision, repeats}) => {
  const { default: Model } = await import(url + "model.js");
  let loaded = 0, total = 0, events = 0, cached = 0;
  const t0 = performance.now();
  const m = await Model.load(url, { precision, onProgress: (p) => { ({ loaded, total } = p); events++; cached += p.cached; } });
  const loadMs = performance.now() - t0;
  const dt = m.p.input_dtypes, T = { int32: Int32Array, uint32: Uint32Array, uint8: Uint8Array, int8: Int8Array, bool: Uint8Array };
  const runs = [], outputs = [];
  for (const step of inputs) {
    const args = step.map((x, i) => m.plan.inputs[i].kind === "var" ? x : (T[dt[i]] ?? Float32Array).from(x));
    const t = performance.now();
    outputs.push((await m.run(args)).map(o => Array.from(o)));
    runs.push(performance.now() - t);
  }
  for (let r = 0; r < repeats; r++) {
    const args = inputs[inputs.length - 1].map((x, i) => m.plan.inputs[i].kind === "var" ? x : (T[dt[i]] ?? Float32Array).from(x));
    const t = performance.now(); await m.run(args); runs.push(performance.now() - t);
  }
  m.destroy();
  return { outputs, runs, loadMs, loaded, total, events, cached, precision: m.precision };
}"""


def chromium_path() -> str | None:
  """Debian's chromium (scripts/setup installs it), or CHROMIUM if set."""
  return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args): pass
  def end_headers(self):
    self.send_header("Cache-Control", "no-store")
    super().end_headers()


class HeadlessChromium:
  """One headless Chromium with WebGPU and one HTTP server on 127.0.0.1 serving `root`; a context manager."""
  def __init__(self, root: str | os.PathLike, executable: str | None = None):
    self.root, self.executable = pathlib.Path(root), executable or chromium_path()
    if self.executable is None: raise RuntimeError("no chromium found: install Debian's chromium (scripts/setup does) or set CHROMIUM")

  def __enter__(self) -> HeadlessChromium:
    from playwright.sync_api import sync_playwright
    self.root.mkdir(parents=True, exist_ok=True)
    (self.root / "harness.html").write_text(HARNESS)
    self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(self.root)))
    threading.Thread(target=self.server.serve_forever, daemon=True).start()
    self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
    self.pw = sync_playwright().start()
    try:
      self.browser = self.pw.chromium.launch(executable_path=self.executable, args=CHROMIUM_FLAGS, headless=True)
      self.page = self.browser.new_page()
      self.console: list[str] = []
      self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
      self.page.goto(self.base + "harness.html")
    except BaseException:
      self.__exit__(None, None, None)
      raise
    return self

  def __exit__(self, *exc):
    for close in (lambda: self.browser.close(), lambda: self.pw.stop(), lambda: self.server.shutdown(), lambda: self.server.server_close()):
      try: close()
      except Exception: pass

  def adapter(self) -> dict | None:
    """The WebGPU adapter's info and features, or None where there is none."""
    return self.page.evaluate("""async () => { const a = await navigator.gpu?.requestAdapter(); if (!a) return null;
      return { vendor: a.info?.vendor, architecture: a.info?.architecture, description: a.info?.description, features: [...a.features] }; }""")

  def run_model(self, name: str, *steps: list, precision: str = "auto", repeats: int = 0) -> dict[str, Any]:
    """Load export `name` (a folder under root) and run it once per step (a list of inputs); outputs come back as numpy arrays."""
    args = [[x.flatten().tolist() if isinstance(x, np.ndarray) else int(x) for x in step] for step in steps]
    res = self.page.evaluate(RUN_JS, {"url": f"{self.base}{name}/", "inputs": args, "precision": precision, "repeats": repeats})
    res["outputs"] = [[np.array(o) for o in outs] for outs in res["outputs"]]
    return res

  def error(self, name: str, precision: str = "auto") -> str:
    """The error message loading export `name` raises, or '' if it loads."""
    return self.page.evaluate("""async ({url, precision}) => { try { const { default: Model } = await import(url + "model.js");
      (await Model.load(url, { precision })).destroy(); return ""; } catch (e) { return String(e); } }""",
                              {"url": f"{self.base}{name}/", "precision": precision})

  def screenshot_demo(self, name: str, path: str | os.PathLike, timeout_ms: int = 120_000) -> dict:
    """Open export `name`'s demo page, wait for it to finish, save a PNG of it; returns the page's result."""
    page = self.browser.new_page(viewport={"width": 900, "height": 520})
    try:
      page.goto(f"{self.base}{name}/index.html")
      page.wait_for_function("window.demoResult !== undefined", timeout=timeout_ms)
      page.screenshot(path=str(path))
      return page.evaluate("window.demoResult")
    finally:
      page.close()
