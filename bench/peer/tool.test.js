// Tests of the benchmark's pure pieces: `npm test --prefix bench/peer`.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const Stripe = require('stripe');
const t = require('./tool');

test('the generated events are unique and verify with Stripe\'s own library', () => {
  const now = Math.floor(Date.now() / 1000);
  const lines = t.signedLines(50, 'hearth1', 'whsec_bench', now);
  const stripe = new Stripe('sk_test_unused');
  const ids = new Set();
  for (const line of lines) {
    const [header, body] = line.split('\t');
    const event = stripe.webhooks.constructEvent(body, header, 'whsec_bench');
    assert.strictEqual(event.type, 'payment_intent.succeeded');
    ids.add(event.id);
  }
  assert.strictEqual(ids.size, 50);
  const [header, body] = lines[0].split('\t');
  assert.throws(() => stripe.webhooks.constructEvent(body, header, 'whsec_other'));
  assert.throws(() => stripe.webhooks.constructEvent(body.replace('1250', '1251'), header, 'whsec_bench'));
});

test('wrk\'s BENCH line is found and read', () => {
  const out = 'Running 10s test\n  2 threads\nBENCH {"requests":10,"p99_us":5}\n';
  assert.deepStrictEqual(t.parseBench(out), {requests: 10, p99_us: 5});
  assert.throws(() => t.parseBench('no line'));
});

test('published events are counted per run prefix, duplicates apart', () => {
  const ids = ['evt_peer1_0', 'evt_peer1_1', 'evt_peer1_1', 'evt_peer10_0', 'evt_hearth1_0'];
  assert.deepStrictEqual(t.countPublished(ids, 'peer1'), {published: 3, unique: 2});
});

test('a run is clean only with no error, no reuse, and every answered event published once', () => {
  const clean = {non2xx: 0, socket_errors: 0, reused: 0, published: 101, unique: 101, ok: 100, sent: 102};
  assert.deepStrictEqual(t.runProblems(clean), []);
  assert.strictEqual(t.runProblems({...clean, unique: 100}).length, 1);
  assert.strictEqual(t.runProblems({...clean, published: 99, unique: 99}).length, 1);
  assert.strictEqual(t.runProblems({...clean, non2xx: 3, reused: 1}).length, 2);
});

test('the report takes medians, ratios and the goal', () => {
  const run = (target, run, rps, p99) => ({
    kind: 'run', target, run, requests: rps * 10, duration_us: 10e6, p50_us: 1000, p99_us: p99 * 1000,
    cpu_ms: rps * 10 * (target === 'hearth' ? 0.5 : 2), non2xx: 0, socket_errors: 0, reused: 0,
    sent: rps * 10, ok: rps * 10, published: rps * 10, unique: rps * 10,
  });
  const rows = [
    run('hearth', 1, 700, 90), run('hearth', 2, 600, 80), run('hearth', 3, 900, 200),
    run('peer', 1, 300, 300), run('peer', 2, 200, 400), run('peer', 3, 310, 250),
    {kind: 'memory', target: 'hearth', idle_kib: 9 * 1024, peak_kib: 20 * 1024},
    {kind: 'memory', target: 'peer', idle_kib: 90 * 1024, peak_kib: 200 * 1024},
  ];
  const r = t.report(rows);
  assert.strictEqual(r.hearth.rps, 700);
  assert.strictEqual(r.peer.p99, 300);
  assert.strictEqual(r.hearth.cpuMsPerRequest, 0.5);
  assert.ok(r.goal, r.text);
  assert.deepStrictEqual(r.problems, []);
  assert.match(r.text, /requests\/s.*700.*300.*2\.33/);
  rows[0].non2xx = 1;
  assert.strictEqual(t.report(rows).problems.length, 1);
  assert.ok(!t.report(rows.map((x) => (x.target === 'peer' && x.kind === 'run' ? {...x, requests: x.requests * 2} : x))).goal);
});
