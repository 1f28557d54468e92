-- wrk: sustained Open311 POST /requests.json, form-encoded as the spec says.
-- Each request gets its own random location (so duplicate detection does not link them all),
-- api_key in the body. Args (after --): api_key, service_code, extra form fields (already encoded).
local threads = {}

-- done(): the one JSON line the bench parses, shared with the plain GET runs
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  api_key = args[1] or "test-key-web"
  service_code = args[2] or "POTHOLE"
  extra = args[3] or "attribute%5BSIZE%5D=large"
  headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
end

request = function()
  -- a ~17 km x 17 km box around Philadelphia's City Hall
  local lat = 39.87 + math.random() * 0.16
  local long = -75.25 + math.random() * 0.20
  local body = string.format(
    "api_key=%s&service_code=%s&lat=%.6f&long=%.6f&%s&description=Benchmark+request&address_string=1400+JFK+Blvd",
    api_key, service_code, lat, long, extra)
  return wrk.format("POST", nil, headers, body)
end
