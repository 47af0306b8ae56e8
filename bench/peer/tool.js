// The pure pieces of scripts/bench-peer, and its small commands:
//   node tool.js gen N PREFIX SECRET            signed events, one "<signature>\t<body>" a line
//   node tool.js drain HOST PROJECT SUB PREFIX  pulls and acks every message; counts PREFIX's
//   node tool.js report RESULTS.jsonl           the table, the ratios and the checks
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');

/** One payment_intent.succeeded event, unique by `${prefix}_${i}`, for its own order. */
function eventBody(prefix, i, created) {
  const id = `${prefix}_${i}`;
  return JSON.stringify({
    id: `evt_${id}`,
    object: 'event',
    type: 'payment_intent.succeeded',
    created,
    livemode: false,
    data: {
      object: {
        id: `pi_${id}`,
        object: 'payment_intent',
        amount: 1250,
        currency: 'usd',
        status: 'succeeded',
        metadata: {order_id: `ord_${id}`},
      },
    },
  });
}

/** Stripe's `Stripe-Signature` header: `t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")`. */
function signature(secret, t, body) {
  const v1 = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

/** `n` lines of "<signature>\t<body>", signed at `t`. */
function signedLines(n, prefix, secret, t) {
  const lines = [];
  for (let i = 0; i < n; i++) {
    const body = eventBody(prefix, i, t);
    lines.push(`${signature(secret, t, body)}\t${body}`);
  }
  return lines;
}

/** The JSON of wrk.lua's BENCH line in wrk's output. */
function parseBench(output) {
  const line = output.split('\n').find((l) => l.startsWith('BENCH '));
  if (!line) throw new Error(`no BENCH line in wrk's output:\n${output}`);
  return JSON.parse(line.slice('BENCH '.length));
}

/** How many messages carry an event id of `prefix`, and how many distinct ids. */
function countPublished(eventIds, prefix) {
  const mine = eventIds.filter((id) => id.startsWith(`evt_${prefix}_`));
  return {published: mine.length, unique: new Set(mine).size};
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Problems of one run: non-2xx, socket errors, reused events, lost or doubled publishes. */
function runProblems(r) {
  const p = [];
  if (r.non2xx > 0) p.push(`${r.non2xx} non-2xx answers`);
  if (r.socket_errors > 0) p.push(`${r.socket_errors} socket errors`);
  if (r.reused > 0) p.push(`${r.reused} requests reused an event (generate more)`);
  if (r.unique !== r.published) p.push(`${r.published - r.unique} events published twice`);
  if (r.published < r.ok) p.push(`${r.ok - r.published} answered events not published`);
  if (r.published > r.sent) p.push(`${r.published - r.sent} more published than sent`);
  return p;
}

/** Per target: medians over the runs, sums, CPU per request, memory. */
function summarize(rows, target) {
  const runs = rows.filter((r) => r.kind === 'run' && r.target === target);
  const mem = rows.find((r) => r.kind === 'memory' && r.target === target) || {};
  const requests = runs.reduce((a, r) => a + r.requests, 0);
  const cpuMs = runs.reduce((a, r) => a + r.cpu_ms, 0);
  return {
    runs: runs.length,
    rps: median(runs.map((r) => r.requests / (r.duration_us / 1e6))),
    p50: median(runs.map((r) => r.p50_us / 1000)),
    p99: median(runs.map((r) => r.p99_us / 1000)),
    non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
    published: runs.reduce((a, r) => a + r.published, 0),
    problems: runs.flatMap((r) => runProblems(r).map((p) => `run ${r.run}: ${p}`)),
    idleMiB: mem.idle_kib / 1024,
    peakMiB: mem.peak_kib / 1024,
    cpuMsPerRequest: requests ? cpuMs / requests : NaN,
  };
}

/** The report and whether the goal (2x the peer's req/s, half its p99, all clean) is met. */
function report(rows) {
  const h = summarize(rows, 'hearth');
  const n = summarize(rows, 'peer');
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const lines = [
    `${'figure'.padEnd(28)}${'hearth'.padStart(12)}${'peer'.padStart(12)}${'hearth/peer'.padStart(14)}`,
  ];
  const row = (name, a, b, d = 1) =>
    lines.push(`${name.padEnd(28)}${f(a, d).padStart(12)}${f(b, d).padStart(12)}${f(a / b, 2).padStart(14)}`);
  row('requests/s (median of runs)', h.rps, n.rps, 0);
  row('p50 ms (median of runs)', h.p50, n.p50);
  row('p99 ms (median of runs)', h.p99, n.p99);
  row('non-2xx answers (all runs)', h.non2xx, n.non2xx, 0);
  row('idle RSS MiB', h.idleMiB, n.idleMiB);
  row('peak RSS MiB under load', h.peakMiB, n.peakMiB);
  row('CPU ms per request', h.cpuMsPerRequest, n.cpuMsPerRequest, 3);
  row('events published (once each)', h.published, n.published, 0);
  const problems = [...h.problems.map((p) => `hearth ${p}`), ...n.problems.map((p) => `peer ${p}`)];
  const goal = h.rps >= 2 * n.rps && h.p99 <= n.p99 / 2;
  return {text: lines.join('\n'), problems, goal, hearth: h, peer: n};
}

async function drain(host, project, sub) {
  const base = `http://${host}/v1/projects/${project}/subscriptions/${sub}`;
  const ids = [];
  let empty = 0;
  while (empty < 3) {
    const res = await fetch(`${base}:pull`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({maxMessages: 1000, returnImmediately: true}),
    });
    if (!res.ok) throw new Error(`pull: ${res.status} ${await res.text()}`);
    const got = (await res.json()).receivedMessages || [];
    if (got.length === 0) {
      empty += 1;
      await new Promise((r) => setTimeout(r, 300));
      continue;
    }
    empty = 0;
    for (const m of got) ids.push((m.message.attributes || {}).provider_event_id || '');
    const ack = await fetch(`${base}:acknowledge`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({ackIds: got.map((m) => m.ackId)}),
    });
    if (!ack.ok) throw new Error(`acknowledge: ${ack.status}`);
  }
  return ids;
}

async function main(argv) {
  const [cmd, ...args] = argv;
  if (cmd === 'gen') {
    const [n, prefix, secret] = args;
    const t = Math.floor(Date.now() / 1000);
    process.stdout.write(signedLines(Number(n), prefix, secret, t).join('\n') + '\n');
  } else if (cmd === 'drain') {
    const [host, project, sub, prefix] = args;
    console.log(JSON.stringify(countPublished(await drain(host, project, sub), prefix)));
  } else if (cmd === 'report') {
    const rows = fs.readFileSync(args[0], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const r = report(rows);
    console.log(r.text);
    for (const p of r.problems) console.log(`PROBLEM: ${p}`);
    console.log(r.goal ? 'GOAL MET: at least 2x the peer\'s requests/s and at most half its p99'
      : 'GOAL NOT MET: needs at least 2x the peer\'s requests/s and at most half its p99');
    process.exitCode = r.problems.length ? 1 : 0;
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

module.exports = {eventBody, signature, signedLines, parseBench, countPublished, median, runProblems, summarize, report};

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
