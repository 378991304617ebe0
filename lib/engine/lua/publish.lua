-- KEYS: seq epoch stream meta [dedup]. ARGV: pub/sub channel, event, data,
-- history, ttl ms, fresh epoch, grip, snapshot, meta ttl ms, origin (a Pusher
-- socket_id the live message is not for; "" for none: not stored, only sent),
-- the pattern channels' prefix, the channel's name.
-- The message also goes to "<prefix>under:<p>" for each p of the name's
-- beginnings that ends in a separator, "<name>\n" first: a replica follows a
-- pattern by subscribing to one of those, so Redis matches no patterns.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', KEYS[2])
if not epoch then epoch = ARGV[6]; redis.call('SET', KEYS[2], epoch) end
if #KEYS > 4 then
  local prior = redis.call('GET', KEYS[5])
  if prior then return {epoch, prior, 1, 0, 0} end
end
local seq = redis.call('INCR', KEYS[1])
local id = epoch .. '-' .. seq
local history = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local floor = nil
local len = redis.call('XLEN', KEYS[3])
if len == 0 then
  local last = redis.call('HGET', KEYS[4], 'last')
  if last then floor = last .. '-0' end
end
if history == 0 then
  floor = seq .. '-0'
else
  if len >= history then
    local old = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', len - history + 1)
    floor = old[#old][1]
    redis.call('XTRIM', KEYS[3], 'MAXLEN', history - 1)
  end
  redis.call('XADD', KEYS[3], seq .. '-0', 't', now, 'e', ARGV[2], 'd', ARGV[3],
             'g', ARGV[7], 's', ARGV[8])
  redis.call('PEXPIRE', KEYS[3], ttl)
end
if floor then redis.call('HSET', KEYS[4], 'floor', string.match(floor, '^%d+')) end
redis.call('HSET', KEYS[4], 'last', seq)
redis.call('PEXPIRE', KEYS[4], ARGV[9])
if #KEYS > 4 then redis.call('SET', KEYS[5], id, 'PX', ttl) end
local head = 'M ' .. epoch .. ' ' .. seq .. ' ' .. now .. ' ' .. #ARGV[2] .. ' ' ..
  #ARGV[3] .. ' ' .. #ARGV[7] .. ' ' .. #ARGV[8]
local origin = ARGV[10] or ''
if #origin > 0 then head = head .. ' ' .. #origin end
local message = head .. '\n' .. ARGV[2] .. ARGV[3] .. ARGV[7] .. ARGV[8] .. origin
local n = redis.call('PUBLISH', ARGV[1], message)
local name = ARGV[12]
for i = 1, #name - 1 do
  local c = string.byte(name, i)
  if c == 46 or c == 58 or c == 45 then -- . : -
    redis.call('PUBLISH', ARGV[11] .. string.sub(name, 1, i), name .. '\n' .. message)
  end
end
return {epoch, id, 0, n, seq}
