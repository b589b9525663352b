-- One request shape for wrk, from the environment (set by run.sh):
--   BENCH_METHOD (GET or POST), BENCH_PATH, BENCH_TOKEN (bearer; empty: none),
--   BENCH_BODY (the POST body, JSON).
-- Counts answers by status class in every thread and prints, at the end, one line that
-- run.sh parses:
--   RESULT requests=N duration_us=N p50_us=N p99_us=N non2xx=N s5xx=N s500=N s503=N
--          connect=N read=N write=N timeout=N
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local token = os.getenv("BENCH_TOKEN") or ""
local body = os.getenv("BENCH_BODY")

local headers = { ["Content-Type"] = "application/json" }
if token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = { non2xx = 0, s5xx = 0, s500 = 0, s503 = 0 }
  prepared = wrk.format(method, path, headers, method == "POST" and body or nil)
end

function request()
  return prepared
end

function response(status, _headers, _body)
  if status < 200 or status > 299 then
    counts.non2xx = counts.non2xx + 1
  end
  if status >= 500 then
    counts.s5xx = counts.s5xx + 1
  end
  if status == 500 then
    counts.s500 = counts.s500 + 1
  elseif status == 503 then
    counts.s503 = counts.s503 + 1
  end
end

function done(summary, latency, _requests)
  local total = { non2xx = 0, s5xx = 0, s500 = 0, s503 = 0 }
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for k, v in pairs(c) do
      total[k] = total[k] + v
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d s5xx=%d s500=%d s503=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    total.non2xx, total.s5xx, total.s500, total.s503,
    e.connect, e.read, e.write, e.timeout))
end
