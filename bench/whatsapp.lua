-- wrk script for bench/run-whatsapp.sh: POST /webhooks/whatsapp with signed webhook bodies made
-- beforehand by civicflow_bench_wa_bodies (lines "<citizen>\t<X-Hub-Signature-256>\t<body>").
--
--   BODIES=bodies.txt THREADS=2 wrk -t2 -c64 -d10s -s bench/whatsapp.lua \
--       http://127.0.0.1:18093/webhooks/whatsapp
--
-- Each thread loads, at init, the bodies of its citizens (citizen % THREADS == thread) as
-- ready-made requests, so that a request costs a table lookup, and sends them in file order,
-- each once: no wamid repeats within a run. (wrk starts its first thread while the next one is
-- still loading, and its Requests/sec then overstates the rate: run-whatsapp.sh takes rates
-- from the server's counters instead.)
--
-- A citizen's messages thus come from one thread, one thread-share of the citizens apart (5,000 requests with 10,000 citizens and 2 threads, against
-- 32 connections per thread), so they reach the server in the order they were written and never
-- two at once.
--
-- wrk calls request() once on its first thread before the run to check the script, and never
-- sends what that call returns; the first call on thread 1 therefore takes nothing from the
-- queue. If a thread runs out of bodies it stops, and sends an unsigned GET instead of its last
-- request (counted as a non-2xx answer and reported as "exhausted"): never a repeated wamid.
--
-- done() prints one "figures" line (run-whatsapp.sh parses it).

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local path = os.getenv("BODIES") or error("BODIES is not set")
  local nthreads = tonumber(os.getenv("THREADS") or "2")
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "facebookexternalua",
  }
  reqs = {}
  for line in io.lines(path) do
    local tab1 = line:find("\t", 1, true)
    local citizen = tonumber(line:sub(1, tab1 - 1))
    if citizen % nthreads == id - 1 then
      local tab2 = line:find("\t", tab1 + 1, true)
      headers["X-Hub-Signature-256"] = line:sub(tab1 + 1, tab2 - 1)
      reqs[#reqs + 1] = wrk.format("POST", nil, headers, line:sub(tab2 + 1))
    end
  end
  sent = 0
  exhausted = 0
  checked = id ~= 1
end

function request()
  if not checked then
    -- wrk's check of the script (see above): not sent.
    checked = true
    return reqs[1]
  end
  if sent >= #reqs then
    exhausted = exhausted + 1
    wrk.thread:stop()
    return wrk.format("GET", nil, {})
  end
  sent = sent + 1
  return reqs[sent]
end

function done(summary, latency, requests)
  local exhausted_total = 0
  for _, t in ipairs(threads) do
    exhausted_total = exhausted_total + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    "figures requests=%d duration_us=%d rps=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f " ..
    "non2xx=%d socket_errors=%d exhausted=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout, exhausted_total))
end
