-- KEYS: stream meta. ARGV: pub/sub channel, meta ttl ms, the pattern
-- channels' prefix, the channel's name (as publish.lua).
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local existed = redis.call('DEL', KEYS[1])
if #last > 0 then
  local s = string.match(last[1][1], '^%d+')
  redis.call('HSET', KEYS[2], 'floor', s, 'last', s)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local n = redis.call('PUBLISH', ARGV[1], 'D')
local name = ARGV[4]
for i = 1, #name - 1 do
  local c = string.byte(name, i)
  if c == 46 or c == 58 or c == 45 then
    redis.call('PUBLISH', ARGV[3] .. string.sub(name, 1, i), name .. '\nD')
  end
end
return {existed, n}
