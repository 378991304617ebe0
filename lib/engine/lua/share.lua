-- Presence and occupancy shared by the replicas, and their heartbeats.
-- ARGV: key prefix, replica id, timeout ms, then entries of five: kind ("m"
-- a member, "o" a channel's occupancy), channel, user id, count (the
-- member's connections on this replica, 1 for occupancy; -1: no longer
-- held here), user info.
-- Keys (built here: which ones is data): <p>p:<channel> hash user id ->
-- "<replicas> <connections> <info>"; <p>o:<channel> the replicas occupying
-- it; <p>r:<replica> hash of what that replica holds ("m\n<channel>\n<user>"
-- -> connections, "o\n<channel>" -> 1); <p>replicas zset replica -> when
-- it is dead (ms, Redis time).
-- First the replicas past their time are reaped as if they had let go of
-- everything. Returns {known, what, channel, user, info, members, ...}:
-- known is 0 when Redis held nothing for this replica (it was reaped, or is
-- new); what is "added" / "removed" (a member, first or last in the
-- deployment; members: the channel's after it) or "occupied" / "vacated".
local p, me, timeout = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0}

local function told(what, ch, user, info)
  local members = 0
  if user ~= '' then members = redis.call('HLEN', p .. 'p:' .. ch) end
  out[#out + 1] = what; out[#out + 1] = ch; out[#out + 1] = user; out[#out + 1] = info
  out[#out + 1] = members
end

local function member(rep, ch, user, conns, info)
  local field = 'm\n' .. ch .. '\n' .. user
  local key = p .. 'p:' .. ch
  local old = redis.call('HGET', rep, field)
  local cur = redis.call('HGET', key, user)
  local replicas, total, known_info = 0, 0, info
  if cur then
    local a, b, rest = string.match(cur, '^(%d+) (%-?%d+) (.*)$')
    replicas, total, known_info = tonumber(a), tonumber(b), rest
  end
  if conns >= 0 then
    local added = false
    if not old then
      replicas = replicas + 1
      old = 0
      if replicas == 1 then known_info = info; added = true end
    end
    total = total + conns - tonumber(old)
    redis.call('HSET', rep, field, conns)
    redis.call('HSET', key, user, replicas .. ' ' .. total .. ' ' .. known_info)
    if added then told('added', ch, user, info) end
  elseif old then
    redis.call('HDEL', rep, field)
    replicas = replicas - 1
    total = total - tonumber(old)
    if replicas <= 0 then
      redis.call('HDEL', key, user)
      told('removed', ch, user, known_info)
    else
      redis.call('HSET', key, user, replicas .. ' ' .. total .. ' ' .. known_info)
    end
  end
end

local function occupancy(rep, ch, held)
  local field = 'o\n' .. ch
  local key = p .. 'o:' .. ch
  local was = redis.call('HEXISTS', rep, field) == 1
  if held and not was then
    redis.call('HSET', rep, field, 1)
    if redis.call('INCR', key) == 1 then told('occupied', ch, '', '') end
  elseif was and not held then
    redis.call('HDEL', rep, field)
    if redis.call('DECR', key) <= 0 then
      redis.call('DEL', key)
      told('vacated', ch, '', '')
    end
  end
end

local zset = p .. 'replicas'
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', now)) do
  if dead ~= me then
    local rep = p .. 'r:' .. dead
    local held = redis.call('HGETALL', rep)
    for i = 1, #held, 2 do
      local f = held[i]
      if string.sub(f, 1, 1) == 'm' then
        local ch, user = string.match(f, '^m\n([^\n]*)\n(.*)$')
        member(rep, ch, user, -1, '')
      else
        occupancy(rep, string.sub(f, 3), false)
      end
    end
    redis.call('DEL', rep)
    redis.call('ZREM', zset, dead)
  end
end

if redis.call('ZSCORE', zset, me) then out[1] = 1 end
redis.call('ZADD', zset, now + timeout, me)
local rep = p .. 'r:' .. me
for i = 4, #ARGV - 4, 5 do
  local kind, ch, user, count, info = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  if kind == 'm' then member(rep, ch, user, count, info) else occupancy(rep, ch, count >= 0) end
end
return out
