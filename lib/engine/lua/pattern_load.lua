-- KEYS: seq epoch. ARGV: fresh epoch, the glob of the pattern's channels'
-- meta keys, the key prefix, the most channels to read.
-- Every channel under a pattern that published within its meta keys' life
-- (history_ttl and a day): {name, floor, entries}, as load.lua gives one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', KEYS[2])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[2], epoch) end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local max = tonumber(ARGV[4])
local skip = #ARGV[3] + 2
local out = {}
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = r[1]
  for _, key in ipairs(r[2]) do
    if #out < max then
      local name = string.sub(key, skip + 1)
      local stream = ARGV[3] .. 's:' .. name
      local meta = redis.call('HMGET', key, 'floor', 'last')
      local floor
      if redis.call('EXISTS', stream) == 0 then floor = tonumber(meta[2] or '0')
      else floor = tonumber(meta[1] or '0') end
      out[#out + 1] = {name, floor, redis.call('XRANGE', stream, '-', '+')}
    end
  end
until cursor == '0'
return {epoch, seq, now, out}
