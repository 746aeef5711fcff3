-- wrk script of `npm run bench:load`: POSTs one JSON body (WRK_BODY) to /v1/jobs, rotating the
-- Bearer keys in WRK_KEYS (comma-separated) and, when WRK_IDEMPOTENT=1, sending a fresh
-- Idempotency-Key each time; prints one JSON line of figures at the end (latencies in us).
local body = os.getenv("WRK_BODY")
local keys = {}
for key in string.gmatch(os.getenv("WRK_KEYS") or "none", "[^,]+") do keys[#keys + 1] = key end
local idempotent = os.getenv("WRK_IDEMPOTENT") == "1"
local nonce = os.getenv("WRK_NONCE") or "0"
local threads = 0
local n = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function request()
  n = n + 1
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[n % #keys + 1] }
  if idempotent then headers["Idempotency-Key"] = nonce .. "-" .. tid .. "-" .. n end
  return wrk.format("POST", "/v1/jobs", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"non2xx":%d,"timeouts":%d,"socketErrors":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.timeout,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
