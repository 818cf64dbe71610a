-- Reserves one request's cost under every limit of its caller(s), all or
-- nothing, in one round trip (policy/redis_limits.h).
--
-- ARGV[1] now in ms; ARGV[2] the sliding window in ms; ARGV[3] the number of
-- limits; then 5 values per limit:
--   key base, kind ("w": sliding window, "b": calendar budget),
--   limit, cost, period (for "b": the period key; for "w": unused)
-- A sliding window is two fixed windows, <base>:<index> with index =
-- floor(now / window); the previous one weighs by how much of it the sliding
-- window still covers. Returns {1} when every limit admits the cost (and
-- charges it), else {0, i, wait_ms} for the first limit i (1-based) that
-- does not.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local idx = math.floor(now / window)
local frac = (now - idx * window) / window
local charges = {}
for i = 1, n do
  local at = 3 + (i - 1) * 5
  local base, kind = ARGV[at + 1], ARGV[at + 2]
  local limit, cost = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  if kind == "w" then
    local cur = tonumber(redis.call("GET", base .. ":" .. idx) or "0")
    local prev = tonumber(redis.call("GET", base .. ":" .. (idx - 1)) or "0")
    if cur < 0 then cur = 0 end
    if prev < 0 then prev = 0 end
    local estimate = prev * (1 - frac) + cur
    if estimate + cost > limit then
      local room = limit - cost
      local wait
      if cost > limit then
        wait = window
      elseif cur <= room and prev > 0 then
        wait = window * (1 - (room - cur) / prev) - (now - idx * window)
      else
        wait = window + window * (1 - room / cur) - (now - idx * window)
      end
      return {0, i, math.max(1, math.ceil(wait))}
    end
    charges[#charges + 1] = {base .. ":" .. idx, cost, 2 * window}
  else
    local key = base .. ":" .. ARGV[at + 5]
    local used = tonumber(redis.call("GET", key) or "0")
    if used < 0 then used = 0 end
    if used + cost > limit then return {0, i, -1} end
    charges[#charges + 1] = {key, cost, 0}
  end
end
for _, c in ipairs(charges) do
  redis.call("INCRBY", c[1], c[2])
  if c[3] > 0 then
    redis.call("PEXPIRE", c[1], c[3])
  else
    redis.call("EXPIRE", c[1], 40 * 24 * 3600)  -- a month and a bit: budgets outlive their period
  end
end
return {1}
