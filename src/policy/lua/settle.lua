-- Settles reservations with the real usage (policy/redis_limits.h): adds a
-- delta (negative: a refund) to each charged counter that still exists.
-- ARGV: pairs of (counter key, delta).
for i = 1, #ARGV, 2 do
  local key, delta = ARGV[i], tonumber(ARGV[i + 1])
  if delta ~= 0 and redis.call("EXISTS", key) == 1 then redis.call("INCRBY", key, delta) end
end
return 1
