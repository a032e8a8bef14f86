// tinybounty WebGPU runtime: loads an exported tinygrad graph (PLAN), streams and caches its safetensors weights, runs it.
// Shipped next to each model.js by tinybounty.export.webgpu.export_model; one Model holds its own GPUDevice and buffers.

const CACHE_NAME = "tinybounty-webgpu-v1";
const DTYPES = { float32: [4, Float32Array], float16: [2, Uint16Array], int32: [4, Int32Array], uint32: [4, Uint32Array],
  int8: [1, Int8Array], uint8: [1, Uint8Array], int16: [2, Int16Array], uint16: [2, Uint16Array], bool: [1, Uint8Array] };
const ST_DTYPES = { F32: "float32", F16: "float16", I32: "int32", U32: "uint32", I8: "int8", U8: "uint8", I16: "int16", U16: "uint16", BOOL: "bool" };

export class ExportError extends Error { constructor(msg) { super(`tinybounty webgpu: ${msg}`); this.name = "TinybountyWebGPUError"; } }

// f16 bits <-> f32, for weights stored in half precision and for the inputs and outputs of an f16 plan
export function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
export function floatToHalf(x) {
  f32[0] = x; const b = u32[0], s = (b >>> 16) & 0x8000, e = ((b >>> 23) & 0xff) - 127 + 15, m = b & 0x7fffff;
  if (((b >>> 23) & 0xff) === 0xff) return s | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 31) return s | 0x7c00;
  if (e <= 0) { if (e < -10) return s; const mm = (m | 0x800000) >> (1 - e); return s | ((mm + 0x1000 + ((mm >> 13) & 1) - 1) >> 13); }
  const r = (e << 10) | (m >> 13), rest = m & 0x1fff;  // round to nearest even
  return s | (rest > 0x1000 || (rest === 0x1000 && (r & 1)) ? r + 1 : r);
}

// a grid size: a number, a variable name ["var", n] or [op, a, b]; the same tree the Python runner evaluates
function evalExpr(e, vars) {
  if (typeof e === "number") return e;
  if (e[0] === "var") return vars[e[1]];
  const a = evalExpr(e[1], vars), b = evalExpr(e[2], vars);
  switch (e[0]) {
    case "+": return a + b; case "-": return a - b; case "*": return a * b; case "/": return Math.trunc(a / b); case "%": return a % b;
    case "fdiv": return Math.floor(a / b); case "fmod": return a - b * Math.floor(a / b); case "max": return Math.max(a, b); case "<": return a < b ? 1 : 0;
  }
  throw new ExportError(`unknown op ${e[0]} in a grid size`);
}

async function fetchCached(url, size, onChunk) {
  const cache = globalThis.caches ? await caches.open(CACHE_NAME).catch(() => null) : null;  // no Cache API outside secure contexts
  let resp = cache && await cache.match(url);
  if (resp) { const buf = await resp.arrayBuffer(); onChunk(buf.byteLength, true); return buf; }
  resp = await fetch(url);
  if (!resp.ok) throw new ExportError(`fetching weights ${url} failed: HTTP ${resp.status}`);
  const out = new Uint8Array(size), reader = resp.body.getReader();
  let at = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > size) throw new ExportError(`${url} is larger than the ${size} bytes the export recorded (stale file?)`);
    out.set(value, at); at += value.length; onChunk(value.length, false);
  }
  if (at !== size) throw new ExportError(`${url} has ${at} bytes, the export recorded ${size} (truncated download?)`);
  if (cache) await cache.put(url, new Response(out)).catch(() => {});  // a full cache (quota) only costs a re-download
  return out.buffer;
}

function parseSafetensors(buf) {
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    out[name] = { dtype: ST_DTYPES[t.dtype], bytes: new Uint8Array(buf, 8 + n + t.data_offsets[0], t.data_offsets[1] - t.data_offsets[0]) };
  }
  return out;
}

// bytes of `src` (stored as `from`) laid out as `to`: only float16 -> float32 is a conversion, anything else must match
function convert(bytes, from, to, what) {
  if (from === to) return bytes;
  if (from === "float16" && to === "float32") {
    const h = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return new Uint8Array(Float32Array.from(h, halfToFloat).buffer);
  }
  throw new ExportError(`${what} is stored as ${from} but the graph needs ${to}`);
}

function pad4(bytes) {
  if (bytes.byteLength % 4 === 0) return bytes;
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4); out.set(bytes); return out;
}

export class Model {
  // load an export: `url` is the folder that holds model.js and the weights; opts: {onProgress({loaded, total, cached}), precision, adapter}
  static async load(plan, url, opts = {}) {
    if (!globalThis.navigator?.gpu) throw new ExportError("WebGPU is not available here (navigator.gpu is undefined): use a browser with WebGPU enabled");
    const adapter = opts.adapter ?? await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new ExportError("navigator.gpu.requestAdapter() returned no adapter: this browser or machine has no usable WebGPU GPU");
    const precision = Model.choosePrecision(plan, adapter, opts.precision ?? "auto");
    const p = plan.plans[precision];
    const requiredLimits = {};
    for (const [k, v] of Object.entries(p.requires)) {
      if (adapter.limits[k] < v) throw new ExportError(`the model needs ${k} >= ${v}, this adapter allows ${adapter.limits[k]}`);
      requiredLimits[k] = Math.max(v, 1);
    }
    const device = await adapter.requestDevice({ requiredFeatures: precision === "f16" ? ["shader-f16"] : [], requiredLimits });
    const weights = await Model.fetchWeights(plan, new URL(url, globalThis.location?.href), opts.onProgress);
    const m = new Model(plan, precision, device);
    await m.build(weights);
    return m;
  }

  static choosePrecision(plan, adapter, want) {
    const f16 = adapter.features.has("shader-f16");
    if (want === "f32") return "f32";
    if (!plan.plans.f16) {
      if (want === "f16") throw new ExportError("precision 'f16' was requested but this model was exported in float32");
      return "f32";
    }
    if (want === "f16" && !f16) throw new ExportError("precision 'f16' was requested but this adapter has no 'shader-f16' feature: " +
      "load with precision 'auto' (or 'f32') to run the float32 fallback with the same float16 weights");
    if (want === "auto" && !f16) console.warn("tinybounty webgpu: no 'shader-f16' on this adapter: running the float32 fallback kernels");
    return f16 ? "f16" : "f32";
  }

  static async fetchWeights(plan, base, onProgress) {
    const total = plan.weights.files.reduce((a, f) => a + f.bytes, 0);
    let loaded = 0;
    const report = (n, cached) => { loaded += n; onProgress?.({ loaded, total, cached }); };
    onProgress?.({ loaded: 0, total, cached: false });
    const files = await Promise.all(plan.weights.files.map(f => fetchCached(new URL(f.path, base).href, f.bytes, report)));
    return Object.assign({}, ...files.map(parseSafetensors));
  }

  constructor(plan, precision, device) {
    Object.assign(this, { plan, precision, device, p: plan.plans[precision] });
    this.lost = null;
    device.lost.then(info => { this.lost = info; });
  }

  async build(weights) {
    const { device, p } = this, U = GPUBufferUsage;
    this.buffers = p.buffers.map((b, i) => {
      const buf = device.createBuffer({ size: Math.max(b.bytes, 4), usage: U.STORAGE | U.COPY_SRC | U.COPY_DST, label: b.weight ?? `buf${i}` });
      if (b.weight !== undefined) {
        const w = weights[b.weight];
        if (!w) throw new ExportError(`weight ${b.weight} is missing from the weight files`);
        device.queue.writeBuffer(buf, 0, pad4(convert(w.bytes, w.dtype, b.dtype, `weight ${b.weight}`)));
      }
      return buf;
    });
    const uniform = (label) => device.createBuffer({ size: 4, usage: U.UNIFORM | U.COPY_DST, label });
    this.infinity = uniform("INFINITY");
    device.queue.writeBuffer(this.infinity, 0, new Float32Array([Infinity]));
    this.vars = Object.fromEntries(this.plan.inputs.filter(x => x.kind === "var").map(x => [x.name, uniform(x.name)]));
    device.pushErrorScope("validation");
    const modules = p.shaders.map((code, i) => device.createShaderModule({ code, label: `shader${i}` }));
    for (const [i, mod] of modules.entries()) {
      const errs = (await mod.getCompilationInfo()).messages.filter(m => m.type === "error");
      if (errs.length) throw new ExportError(`WGSL of shader ${i} failed to compile: ${errs.map(m => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ")}`);
    }
    this.dispatches = await Promise.all(p.kernels.map(async (k) => {
      const n = 1 + k.bufs.length + k.vars.length, entry = (i) => ({ binding: i, visibility: GPUShaderStage.COMPUTE,
        buffer: { type: i === 0 || i > k.bufs.length ? "uniform" : "storage" } });
      const layout = device.createBindGroupLayout({ entries: Array.from({ length: n }, (_, i) => entry(i)) });
      const pipeline = await device.createComputePipelineAsync({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: modules[k.shader], entryPoint: k.entry }, label: k.name }).catch(e => {
        throw new ExportError(`kernel ${k.name}: ${e.message}`);
      });
      const res = [this.infinity, ...k.bufs.map(b => this.buffers[b]), ...k.vars.map(v => this.vars[v])];
      return { k, pipeline, group: device.createBindGroup({ layout, entries: res.map((buffer, binding) => ({ binding, resource: { buffer } })) }) };
    }));
    const err = await device.popErrorScope();
    if (err) throw new ExportError(`building the pipelines failed: ${err.message}`);
  }

  // inputs: an array in the exported order (typed arrays for tensors, integers for variables) or an object keyed by input name.
  // Returns the outputs as typed arrays (Float32Array for float16 outputs).
  async run(inputs) {
    if (this.lost) throw new ExportError(`the GPU device was lost: ${this.lost.message}`);
    const { device, p, plan } = this, vars = {};
    const list = Array.isArray(inputs) ? inputs : plan.inputs.map(x => inputs[x.name]);
    if (list.length !== plan.inputs.length) throw new ExportError(`run() needs ${plan.inputs.length} inputs (${plan.inputs.map(x => x.name)}), got ${list.length}`);
    plan.inputs.forEach((spec, i) => {
      const x = list[i];
      if (spec.kind === "var") {
        if (!Number.isInteger(x) || x < spec.min || x > spec.max) throw new ExportError(`input ${spec.name} must be an integer in [${spec.min}, ${spec.max}], got ${x}`);
        vars[spec.name] = x; device.queue.writeBuffer(this.vars[spec.name], 0, new Int32Array([x]));
        return;
      }
      const n = spec.shape.reduce((a, b) => a * b, 1), dtype = p.input_dtypes[i];
      const want = dtype === "float16" ? Float32Array : DTYPES[dtype][1];
      if (!(x instanceof want) || x.length !== n) throw new ExportError(`input ${spec.name} must be a ${want.name} of ${n} elements (shape ${JSON.stringify(spec.shape)}), got ${x?.constructor?.name} of ${x?.length}`);
      const data = dtype === "float16" ? Uint16Array.from(x, floatToHalf) : x;
      if (p.inputs[i] !== null) device.queue.writeBuffer(this.buffers[p.inputs[i]], 0, pad4(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    });
    const enc = device.createCommandEncoder(), pass = enc.beginComputePass();
    for (const { k, pipeline, group } of this.dispatches) {
      const grid = k.grid.map(g => evalExpr(g, vars));
      if (grid.some(g => g === 0)) continue;
      pass.setPipeline(pipeline); pass.setBindGroup(0, group); pass.dispatchWorkgroups(...grid);
    }
    pass.end();
    const reads = p.outputs.map((b) => {
      const size = this.buffers[b].size, staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      enc.copyBufferToBuffer(this.buffers[b], 0, staging, 0, size);
      return staging;
    });
    device.queue.submit([enc.finish()]);
    return Promise.all(reads.map(async (staging, i) => {
      await staging.mapAsync(GPUMapMode.READ);
      const dtype = p.output_dtypes[i], n = plan.outputs[i].shape.reduce((a, b) => a * b, 1), [size, T] = DTYPES[dtype];
      const raw = new T(staging.getMappedRange().slice(0, n * size));
      staging.destroy();
      return dtype === "float16" ? Float32Array.from(raw, halfToFloat) : raw;
    }));
  }

  destroy() { this.buffers.forEach(b => b.destroy()); this.device.destroy(); }
}
