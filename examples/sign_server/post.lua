-- wrk script: POSTs a 64-byte body to the signing server and prints one
-- machine-readable RESULT line at the end (bench.sh reads it).
wrk.method = "POST"
wrk.body = string.rep("m", 64)
wrk.headers["Content-Type"] = "application/octet-stream"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f socket_errors=%.0f non2xx=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
