-- wrk script: POST /v1/messages spread over 10,000 distinct citizens, mixing menu choices, FAQ
-- questions, form answers and commands. Each citizen goes through the same nine-message
-- conversation, one message per visit, so the server sees real sessions (store reads and
-- writes, engine turns, 10,000 live sessions), not a fixed reply.
--
--   wrk -t2 -c64 -d20s -s bench/messages.lua http://127.0.0.1:8080/v1/messages
-- Validation run (one connection, every reply checked, prints failures and a summary):
--   VALIDATE=1 wrk -t1 -c1 -d3s -s bench/messages.lua http://127.0.0.1:8080/v1/messages

local citizens = 10000
local script = {
  -- text,            kind,     expected "state" (nil: not checked), expected "flow"
  { "hi",              "menu",    "menu",       "main" },
  { "office timings",  "faq",     "menu",       "main" },
  { "2",               "menu",    "child_name", "birth_certificate" },
  { "Aarav Sharma",    "form",    "dob",        "birth_certificate" },
  { "05-01-2026",      "form",    "place",      "birth_certificate" },
  { "menu",            "command", "menu",       "main" },
  { "1",               "menu",    nil,          "passport" },
  { "tatkal fee",      "faq",     nil,          "passport" },
  { "menu",            "command", "menu",       "main" },
}

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  validate = os.getenv("VALIDATE") == "1"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  slot = 0          -- this thread's position in its slice of citizens
  step = {}         -- citizen -> next message index
  expected = {}     -- FIFO of expectations (validation: one connection, in order)
  head, tail = 1, 0
  failures, checked = 0, 0
end

function request()
  -- Every thread walks all citizens in turn, from its own offset; over a run every one of the
  -- 10,000 citizens is used. (Two threads may now and then reach the same citizen: that only
  -- queues one message behind the other, as a real double send would.)
  local citizen = ((id - 1) * 5003 + slot) % citizens
  slot = slot + 1
  local s = step[citizen] or 1
  step[citizen] = (s % #script) + 1
  local m = script[s]
  if validate then
    tail = tail + 1
    expected[tail] = m
  end
  local body = string.format('{"user":"bench-%05d","text":"%s"}', citizen, m[1])
  return wrk.format(nil, nil, nil, body)
end

if os.getenv("VALIDATE") == "1" then
  function response(status, headers, body)
    local m = expected[head]
    expected[head] = nil
    head = head + 1
    checked = checked + 1
    local ok = status == 200 and body:find('"replies":[{', 1, true) ~= nil
    if ok and m[3] then ok = body:find('"state":"' .. m[3] .. '"', 1, true) ~= nil end
    if ok and m[4] then ok = body:find('"flow":"' .. m[4] .. '"', 1, true) ~= nil end
    if not ok then
      failures = failures + 1
      if failures <= 5 then
        io.stderr:write(string.format("unexpected reply to %q (%s): %d %s\n", m[1], m[2], status,
                                      body:sub(1, 300)))
      end
    end
  end

  function done(summary, latency, requests)
    for _, t in ipairs(threads) do
      local f, c = t:get("failures"), t:get("checked")
      io.write(string.format("validation: %d replies checked, %d unexpected\n", c, f))
    end
  end
end
