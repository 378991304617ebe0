-- KEYS: seq epoch stream meta. ARGV: fresh epoch, after seq.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', KEYS[2])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[2], epoch) end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local meta = redis.call('HMGET', KEYS[4], 'floor', 'last')
local floor
if redis.call('EXISTS', KEYS[3]) == 0 then floor = tonumber(meta[2] or '0')
else floor = tonumber(meta[1] or '0') end
local entries = redis.call('XRANGE', KEYS[3], (tonumber(ARGV[2]) + 1) .. '-0', '+')
return {epoch, seq, floor, now, entries}
