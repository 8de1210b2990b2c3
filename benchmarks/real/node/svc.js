// One instrumented Node.js HTTP service of the real-SDK harness (run by ../run.py).
// Official @opentelemetry/sdk-trace-node with the OTLP/HTTP JSON or protobuf exporter;
// manual SERVER/CLIENT spans, W3C traceparent propagation, client timeouts with one retry;
// V8 pauses recorded by perf_hooks 'gc' entries and written to a JSON file at exit.
//   node --expose-gc svc.js CONFIG.json
'use strict';
const fs = require('fs');
const os = require('os');
const http = require('http');
const { PerformanceObserver, performance } = require('perf_hooks');
const api = require('@opentelemetry/api');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const CFG = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const Exporter = CFG.encoding === 'json'
  ? require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter
  : require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter;

// seeded generator for the induced-GC schedule (mulberry32)
let seed = CFG.seed >>> 0;
function rnd() {
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const expo = (mean) => -Math.log(1 - rnd()) * mean;

const PAUSES = [];
let inducing = false;
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const start = Math.round((performance.timeOrigin + e.startTime) * 1e6);
    PAUSES.push({
      start_unix_nano: start,
      end_unix_nano: start + Math.round(e.duration * 1e6),
      kind: e.detail ? e.detail.kind : e.kind,
      origin: 'unknown',
    });
  }
});
obs.observe({ entryTypes: ['gc'] });
const INDUCED = [];  // [t0, t1] ns windows of our global.gc() calls, to label pauses

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({
    'service.name': CFG.service,
    'service.instance.id': CFG.instance,
    'host.name': os.hostname(),
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
    'process.pid': process.pid,
  }),
  spanProcessors: [new BatchSpanProcessor(new Exporter({ url: CFG.endpoint }), {
    scheduledDelayMillis: 500, maxQueueSize: 65536, maxExportBatchSize: 512,
  })],
});
provider.register();
const tracer = api.trace.getTracer('tailscope-real-harness');

// live heap every full mark-compact traverses
const HEAP = [];
for (let i = 0; i < (CFG.heap_objects || 0); i++) HEAP.push({ a: i, b: [i, String(i)] });

function busy(ms) {
  const end = performance.now() + ms;
  let junk = [];
  while (performance.now() < end) {
    junk.push({ x: [1, 2, 3], y: 'z' + junk.length });
    if (junk.length > 200) junk = [];
  }
}

function attempt(parentCtx, target, n) {
  return new Promise((resolve) => {
    const attrs = {
      'http.request.method': 'GET',
      'server.address': target.service,
      'server.port': target.port,
      'url.full': `http://${target.service}:${target.port}${target.path}`,
    };
    if (n) attrs['http.request.resend_count'] = n;
    const span = tracer.startSpan(`GET ${target.path}`, { kind: api.SpanKind.CLIENT, attributes: attrs }, parentCtx);
    const headers = { host: `${target.service}:${target.port}` };
    api.propagation.inject(api.trace.setSpan(parentCtx, span), headers);
    let done = false;
    const finish = (ok, status, err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (status) span.setAttribute('http.response.status_code', status);
      if (err) {
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: err });
        span.setAttribute('error.type', err === 'timeout' ? 'timeout' : String(err));
      } else if (status >= 500) {
        span.setStatus({ code: api.SpanStatusCode.ERROR });
        span.setAttribute('error.type', String(status));
      }
      span.end();
      resolve({ ok, status, timedOut: err === 'timeout' });
    };
    const req = http.request({ host: '127.0.0.1', port: target.port, path: target.path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode < 500, res.statusCode, null));
    });
    const timer = setTimeout(() => { finish(false, 0, 'timeout'); req.destroy(); }, target.timeout_ms);
    req.on('error', (e) => finish(false, 0, e.code || 'error'));
    req.end();
  });
}

async function handle(req, res) {
  const path = req.url.split('?')[0];
  const ctx = api.propagation.extract(api.ROOT_CONTEXT, req.headers);
  const attrs = { 'http.request.method': 'GET', 'http.route': path, 'url.path': path, 'server.port': CFG.port };
  if (req.headers['x-loadgen-id']) attrs['loadgen.request_id'] = Number(req.headers['x-loadgen-id']);
  const span = tracer.startSpan(`GET ${path}`, { kind: api.SpanKind.SERVER, attributes: attrs }, ctx);
  const sctx = api.trace.setSpan(ctx, span);
  const [lo, hi] = CFG.work_ms || [1, 3];
  busy(lo + rnd() * (hi - lo));
  let status = 200;
  for (const target of CFG.calls || []) {
    if (Math.random() >= (target.prob === undefined ? 1 : target.prob)) continue;
    let r = await attempt(sctx, target, 0);
    if (!r.ok && r.timedOut) r = await attempt(sctx, target, 1);
    if (!r.ok) { status = 502; break; }
  }
  span.setAttribute('http.response.status_code', status);
  if (status >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR });
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(status === 200 ? 'ok' : 'upstream failed', () => span.end());
}

const server = http.createServer((req, res) => { handle(req, res); });
server.keepAliveTimeout = 1000;

// heartbeat: a 2 ms interval timer firing more than 10 ms late means the event loop was blocked
// (a collection, CPU starvation, or long synchronous work); run.py subtracts the collections
const FREEZES = [];
let lastTick = Date.now();
const hb = setInterval(() => {
  const now = Date.now();
  if (now - lastTick > 12) FREEZES.push({ start_unix_nano: lastTick * 1e6, end_unix_nano: now * 1e6 });
  lastTick = now;
}, 2);
let stopping = false;
let gcTimer = null;
function scheduleGc() {
  const g = CFG.gc || {};
  if (!g.mean_interval_s) return;
  gcTimer = setTimeout(() => {
    if (stopping) return;
    const garbage = [];
    const n = Math.floor((g.garbage_min || 10000) + rnd() * ((g.garbage_max || 200000) - (g.garbage_min || 10000)));
    for (let i = 0; i < n; i++) garbage.push({ i, s: [i] });
    const t0 = Date.now();
    global.gc();
    INDUCED.push([t0, Date.now()]);
    if (rnd() < (g.double_prob || 0)) {
      setTimeout(() => { const t1 = Date.now(); global.gc(); INDUCED.push([t1, Date.now()]); scheduleGc(); }, 2 + rnd() * 6);
    } else scheduleGc();
  }, expo(g.mean_interval_s * 1000));
}

function shutdown() {
  if (stopping) return;
  stopping = true;
  clearTimeout(gcTimer);
  clearInterval(hb);
  server.close();
  setTimeout(async () => {
    try { await provider.forceFlush(); await provider.shutdown(); } catch (e) { /* exporter gone */ }
    for (const p of PAUSES) {
      const ms = p.start_unix_nano / 1e6;
      p.origin = INDUCED.some(([a, b]) => ms >= a - 2 && ms <= b + 2) ? 'induced' : 'natural';
    }
    fs.writeFileSync(CFG.gc_log, JSON.stringify({ instance: CFG.instance, runtime: 'nodejs', pauses: PAUSES, freezes: FREEZES }));
    process.exit(0);
  }, 100);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(CFG.port, '127.0.0.1', () => { console.log('ready'); scheduleGc(); });
