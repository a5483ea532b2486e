-- wrk script: every request a push of N packages with order ids never sent before.
-- usage: wrk ... -s push.lua URL -- N PREFIX TOKEN[,TOKEN...] [TOTAL]
-- With several tokens (several shops), the requests take them in turn.
-- With TOTAL, each thread stops once TOTAL pushes were answered (-d is then only a bound); a
-- few requests still in flight then may be accepted too: count what was stored, not TOTAL.
local threads = {}
local counter = 0
local answered = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  n = tonumber(args[1])
  prefix = args[2]
  total = tonumber(args[4])
  tokens = {}
  for token in string.gmatch(args[3], "[^,]+") do
    table.insert(tokens, "Bearer " .. token)
  end
  headers = {}
  headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local items = {}
  for i = 1, n do
    items[i] = string.format(
      '{"order_id":"%s-%d-%d-%d","awb":"JX%d%d","shipped_at":"2024-05-05 10:%02d:00",' ..
      '"sorting_code":"JOG-JOG1000-JKT2010","service":"jne","service_type":"regular"}',
      prefix, tid, counter, i, counter, i, i % 60)
  end
  local body = '{"method":"shipped_packages","data":[' .. table.concat(items, ",") .. ']}'
  headers["Authorization"] = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/kiriminaja/push", headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if total and answered >= total then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "errors": %d, "non2xx": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
