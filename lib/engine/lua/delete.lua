-- KEYS: stream meta. ARGV: pub/sub channel, meta ttl ms.
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local existed = redis.call('DEL', KEYS[1])
if #last > 0 then
  local s = string.match(last[1][1], '^%d+')
  redis.call('HSET', KEYS[2], 'floor', s, 'last', s)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return {existed, redis.call('PUBLISH', ARGV[1], 'D')}
