-- wrk script of scripts/bench-peer: POSTs pre-generated, uniquely identified, correctly signed
-- Stripe events (one "<Stripe-Signature>\t<body>" per line of the file given as the first
-- argument after `--`), each thread taking its own share (line i goes to thread i mod N, N the
-- second argument), and reports one BENCH line of JSON. `reused` counts requests sent after a
-- thread ran out of events (the run is then invalid: an event went twice).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  reqs = {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then
      local tab = line:find("\t", 1, true)
      reqs[#reqs + 1] = wrk.format("POST", "/stripe", {
        ["Content-Type"] = "application/json",
        ["Stripe-Signature"] = line:sub(1, tab - 1),
      }, line:sub(tab + 1))
    end
    i = i + 1
  end
  sent, ok, non2xx, reused = 0, 0, 0, 0
end

function request()
  sent = sent + 1
  if sent > #reqs then reused = reused + 1 end
  return reqs[((sent - 1) % #reqs) + 1]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local s, o, n, r = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); o = o + t:get("ok"); n = n + t:get("non2xx"); r = r + t:get("reused")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"sent":%d,"ok":%d,"non2xx":%d,"reused":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    s, o, n, r, e.connect + e.read + e.write + e.timeout))
end
