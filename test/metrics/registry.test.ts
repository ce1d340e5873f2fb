import t from 'tap';
import { MetricError, Registry } from '../../src/metrics/registry.js';
import { parsePrometheus, sampleValue } from './prom-parse.js';

t.test('the test parser rejects what Prometheus would', async (t) => {
  const bad: [string, RegExp][] = [
    ['x 1\n', /has no # TYPE before it/],
    ['# TYPE x counter\nx -1\n', /counter x is -1/],
    ['# TYPE x gauge\nx{a="1} 1\n', /unterminated|not a sample|bad label/],
    ['# TYPE x gauge\nx{a="\\q"} 1\n', /bad escape/],
    ['# TYPE x gauge\nx one\n', /bad value/],
    ['# HELP x a\\q\n# TYPE x gauge\n', /bad escape \\q in HELP/],
    ['# TYPE x gauge\nx 1\nx 2\n', /duplicate series/],
    ['# TYPE x gauge\n# TYPE y gauge\ny 1\nx 1\n', /not contiguous/],
    ['# TYPE x gauge\n# TYPE x gauge\n', /second TYPE/],
    ['# TYPE x gauge\nx 1', /end with a newline/],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /cumulative/],
    ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /_count 1 != \+Inf bucket 2/],
  ];
  for (const [text, error] of bad) t.throws(() => parsePrometheus(text), error, JSON.stringify(text));
});

t.test('counters, gauges and histograms expose valid, consistent text', async (t) => {
  const r = new Registry();
  const c = r.counter({ name: 'demo_requests_total', help: 'Requests.', labelNames: ['code'] });
  const g = r.gauge({ name: 'demo_temperature', help: 'Temperature.' });
  const h = r.histogram({ name: 'demo_latency_seconds', help: 'Latency.', labelNames: ['path'], buckets: [0.1, 1] });
  c.inc({ code: '200' });
  c.inc({ code: '200' }, 2);
  c.inc({ code: 500 });
  g.set(undefined, -3.5);
  h.observe({ path: '/a' }, 0.05);
  h.observe({ path: '/a' }, 0.5);
  h.observe({ path: '/a' }, 7);

  const text = r.expose();
  const fams = parsePrometheus(text);
  t.same([...fams.keys()], ['demo_requests_total', 'demo_temperature', 'demo_latency_seconds']);
  t.equal(fams.get('demo_requests_total')?.type, 'counter');
  t.equal(fams.get('demo_requests_total')?.help, 'Requests.');
  t.equal(sampleValue(fams, 'demo_requests_total', { code: '200' }), 3);
  t.equal(sampleValue(fams, 'demo_requests_total', { code: '500' }), 1);
  t.equal(sampleValue(fams, 'demo_temperature'), -3.5);
  t.equal(sampleValue(fams, 'demo_latency_seconds_bucket', { path: '/a', le: '0.1' }), 1);
  t.equal(sampleValue(fams, 'demo_latency_seconds_bucket', { path: '/a', le: '1' }), 2);
  t.equal(sampleValue(fams, 'demo_latency_seconds_bucket', { path: '/a', le: '+Inf' }), 3);
  t.equal(sampleValue(fams, 'demo_latency_seconds_sum', { path: '/a' }), 7.55);
  t.equal(sampleValue(fams, 'demo_latency_seconds_count', { path: '/a' }), 3);
  t.same(h.snapshot({ path: '/a' }), { count: 3, sum: 7.55 });
  t.match(text, /^# HELP demo_requests_total Requests\.\n# TYPE demo_requests_total counter\n/);
});

t.test('escaping of help text and label values survives a round trip', async (t) => {
  const r = new Registry();
  const help = 'Line one\nback\\slash "quoted"';
  const g = r.gauge({ name: 'demo_escape', help, labelNames: ['v'] });
  const nasty = 'a"b\\c\nd}e,f="g"';
  g.set({ v: nasty }, 1);
  const text = r.expose();
  t.notMatch(text.split('\n').slice(2).join('\n'), /\n[^#d\n]/, 'no raw newline inside a sample');
  const fams = parsePrometheus(text);
  t.equal(fams.get('demo_escape')?.help, help);
  t.equal(sampleValue(fams, 'demo_escape', { v: nasty }), 1);
});

t.test('unlabelled metrics exist at 0; special values; removal', async (t) => {
  const r = new Registry();
  const c = r.counter({ name: 'demo_total', help: 'x' });
  const g = r.gauge({ name: 'demo_g', help: 'x', labelNames: ['k'] });
  const h = r.histogram({ name: 'demo_h', help: 'x', buckets: [1] });
  let fams = parsePrometheus(r.expose());
  t.equal(sampleValue(fams, 'demo_total'), 0);
  t.equal(fams.get('demo_g')?.samples.length, 0, 'labelled: no series until set');
  t.equal(sampleValue(fams, 'demo_h_count'), 0);
  t.equal(h.snapshot().count, 0);

  g.set({ k: 'inf' }, Infinity);
  g.set({ k: 'neg' }, -Infinity);
  g.set({ k: 'nan' }, NaN);
  g.set({ k: 'gone' }, 1);
  g.inc({ k: 'gone' });
  t.equal(g.get({ k: 'gone' }), 2);
  g.dec({ k: 'gone' }, 2);
  t.equal(g.get({ k: 'gone' }), 0);
  t.ok(g.remove({ k: 'gone' }));
  g.retain((l) => l.k !== 'neg');
  fams = parsePrometheus(r.expose());
  t.equal(sampleValue(fams, 'demo_g', { k: 'inf' }), Infinity);
  t.ok(Number.isNaN(sampleValue(fams, 'demo_g', { k: 'nan' })));
  t.equal(sampleValue(fams, 'demo_g', { k: 'neg' }), undefined);
  t.equal(sampleValue(fams, 'demo_g', { k: 'gone' }), undefined);

  c.setTotal(undefined, 10);
  c.setTotal(undefined, 4); // a reset (e.g. maps recreated): Prometheus handles it
  t.equal(c.get(), 4);
});

t.test('misuse is a clear error', async (t) => {
  const r = new Registry();
  const c = r.counter({ name: 'demo_total', help: 'x', labelNames: ['a'] });
  t.throws(() => r.counter({ name: 'demo_total', help: 'again' }), /registered twice/);
  t.throws(() => r.gauge({ name: 'bad-name', help: 'x' }), /metric name "bad-name" is not valid/);
  t.throws(() => r.gauge({ name: 'demo_x', help: 'x', labelNames: ['__reserved'] }), /label name "__reserved" is not allowed/);
  t.throws(() => r.histogram({ name: 'demo_h', help: 'x', labelNames: ['le'], buckets: [1] }), /label name "le"/);
  t.throws(() => r.histogram({ name: 'demo_h2', help: 'x', buckets: [2, 1] }), /strictly ascending/);
  t.throws(() => r.gauge({ name: 'demo_d', help: 'x', labelNames: ['a', 'a'] }), /duplicate label names/);
  t.throws(() => c.inc({ a: '1' }, -1), MetricError);
  t.throws(() => c.inc({ b: '1' } as never), /demo_total: labels \{b\} do not match the declared \{a\}/);
  t.throws(() => c.inc(), /labels \{\} do not match/);
  t.throws(() => c.setTotal({ a: 'x' }, -5), /must be >= 0/);
});

t.test('collectors run before a scrape; a failing one is reported, not fatal', async (t) => {
  const r = new Registry();
  const g = r.gauge({ name: 'demo_collected', help: 'x' });
  let n = 0;
  r.onCollect(() => g.set(undefined, ++n));
  r.onCollect(() => {
    throw new Error('map gone');
  });
  r.onCollect(async () => {
    await new Promise((resolve) => setImmediate(resolve));
    g.inc();
  });
  const errors = await r.collect();
  t.same(errors.map((e) => e.message), ['map gone']);
  t.equal(g.get(), 2);
  await r.collect();
  t.equal(g.get(), 3);
});
