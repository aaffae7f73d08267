-- wrk script: POST the JSON body given in the BODY environment variable (default `{}`).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or "{}"

-- One machine-readable line, so that a run full of errors is not mistaken for a fast one.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT req/s=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
