-- wrk script of project/bench/run.sh: POSTs the JSON body in BODY (empty by default), with
-- `Authorization: Bearer $TOKEN` when TOKEN is set, counts every answer that is not 2xx, and
-- stops each thread after LIMIT answers when LIMIT is set (a fixed number of events).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or ""
local token = os.getenv("TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local limit = tonumber(os.getenv("LIMIT") or "0") or 0

-- Globals of each thread's own Lua state, read back in done() with thread:get.
answers, non2xx, first_bad = 0, 0, ""

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  answers = answers + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 200):gsub("[\r\n]", " ")
    end
  end
  if limit > 0 and answers >= limit then
    wrk.thread:stop()
  end
end

-- One machine-readable line (microseconds, counts), so that a run full of errors is never
-- mistaken for a fast one.
function done(summary, latency, requests)
  local bad, sample = 0, ""
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    if sample == "" then sample = thread:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d first_bad=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
    e.connect + e.read + e.write + e.timeout, sample))
end
