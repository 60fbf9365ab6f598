-- Shared by every scenario script: prints one machine-readable result line that run.sh parses.
-- Latencies are wrk's, in microseconds.
local M = {}

function M.report(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
      summary.requests, secs, summary.requests / secs,
      math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
      e.status, e.connect + e.read + e.write + e.timeout))
end

-- The raw text of a POST /v2/keys.verifyKey request for `key`, without building a headers table
-- per request (wrk.format would), so the client spends as little CPU as possible.
function M.verify_request_builder(root_key)
   local head = "POST /v2/keys.verifyKey HTTP/1.1\r\n"
      .. "Host: " .. wrk.headers["Host"] .. "\r\n"
      .. "Authorization: Bearer " .. root_key .. "\r\n"
      .. "Content-Type: application/json\r\n"
      .. "Content-Length: "
   return function(key)
      local body = '{"key":"' .. key .. '"}'
      return head .. #body .. "\r\n\r\n" .. body
   end
end

-- The raw text of a POST request to `path` (e.g. "/v2/ratelimit.limit") with a JSON body, built the
-- same way: the fixed head once, then only the body and its length per request.
function M.post_request_builder(path, root_key)
   local head = "POST " .. path .. " HTTP/1.1\r\n"
      .. "Host: " .. wrk.headers["Host"] .. "\r\n"
      .. "Authorization: Bearer " .. root_key .. "\r\n"
      .. "Content-Type: application/json\r\n"
      .. "Content-Length: "
   return function(body)
      return head .. #body .. "\r\n\r\n" .. body
   end
end

-- Reads the key file (one plaintext a line); with several wrk threads, thread `tid` of `n` keeps
-- every n-th line so the threads split the file between them.
function M.read_keys(path, tid, nthreads)
   local keys, i = {}, 0
   for line in io.lines(path) do
      if line ~= "" then
         if i % nthreads == tid then keys[#keys + 1] = line end
         i = i + 1
      end
   end
   return keys
end

return M
