-- KEYS: lease state. ARGV: replica, lease ms.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, 1, redis.call('HGETALL', KEYS[2])}
end
if holder ~= ARGV[1] then return {0, 0} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, 0}
