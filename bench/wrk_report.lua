-- wrk script for bench/run.py. Latency is measured by wrk from writing a request to reading its answer, per
-- connection. WRK_THINK_MS > 0 makes each connection wait that long before its next request (paced clients
-- instead of a back-to-back flood). done() prints one machine-readable line with exact percentiles (microseconds).
local think = tonumber(os.getenv("WRK_THINK_MS") or "0") or 0
if think > 0 then
  delay = function()
    return think
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
