-- KEYS: stream epoch presence.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local a, b = '', ''
if #first > 0 then a = string.match(first[1][1], '^%d+'); b = string.match(last[1][1], '^%d+') end
return {redis.call('XLEN', KEYS[1]), redis.call('GET', KEYS[2]) or '', a, b, redis.call('HLEN', KEYS[3])}
