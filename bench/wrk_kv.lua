-- wrk_kv.lua: the wrk request generator of bench/kv_vs_etcd.sh.
--
-- One script for both systems so that sctld and etcd get the same keys, values and
-- request mix; only the HTTP/JSON shape differs:
--   wrk ... -s bench/wrk_kv.lua URL -- SYSTEM OP TAG
--   SYSTEM  sctld: PUT /v1/kv/KEY (raw 256 B body), GET /v1/kv/KEY
--           etcd:  POST /v3/kv/put {"key":b64,"value":b64}, POST /v3/kv/range {"key":b64}
--                  (etcd's gRPC gateway; range is linearizable by default)
--   OP      put: a distinct new 16-byte key per request: TAG (1 char) + thread (2
--               digits) + counter (13 digits)
--           get: a random key of the 100,000 that `kvbench load` wrote (r%015d)
-- done() prints one `RESULT ...` line (throughput, p50/p99 in microseconds, non-2xx
-- count) that the driver parses; wrk's own --latency table is kept in the log.

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local enc = {}
for i = 1, 64 do enc[i - 1] = alphabet:sub(i, i) end

local function b64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(v / 262144) % 64
    local c2 = math.floor(v / 4096) % 64
    local c3 = math.floor(v / 64) % 64
    local c4 = v % 64
    out[#out + 1] = enc[c1] .. enc[c2] .. (b and enc[c3] or "=") .. (c and enc[c4] or "=")
  end
  return table.concat(out)
end

local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

local system, op, tag, value, value64, n
local nkeys = 100000

function init(args)
  system, op, tag = args[1], args[2], args[3] or "p"
  if (system ~= "sctld" and system ~= "etcd") or (op ~= "put" and op ~= "get") then
    error("usage: -- sctld|etcd put|get TAG")
  end
  value = string.rep("v", 256)
  value64 = b64(value)
  n = 0
  math.randomseed(12345 + tid * 7919)
end

local json = { ["Content-Type"] = "application/json" }
local octets = { ["Content-Type"] = "application/octet-stream" }

function request()
  local key
  if op == "put" then
    n = n + 1
    key = string.format("%s%02d%013d", tag, tid, n)
    if system == "sctld" then
      return wrk.format("PUT", "/v1/kv/" .. key, octets, value)
    end
    return wrk.format("POST", "/v3/kv/put", json,
      '{"key":"' .. b64(key) .. '","value":"' .. value64 .. '"}')
  end
  key = string.format("r%015d", math.random(0, nkeys - 1))
  if system == "sctld" then
    return wrk.format("GET", "/v1/kv/" .. key)
  end
  return wrk.format("POST", "/v3/kv/range", json, '{"key":"' .. b64(key) .. '"}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
