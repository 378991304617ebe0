-- KEYS: presence hash. ARGV: most to list. Returns {count, {user, value, ...}}:
-- all of them when they fit, else that many (HRANDFIELD: which ones is
-- arbitrary), so a large channel costs each new stream only what it lists.
local n = tonumber(ARGV[1])
local count = redis.call('HLEN', KEYS[1])
if count == 0 or n == 0 then return {count, {}} end
return {count, redis.call('HRANDFIELD', KEYS[1], n, 'WITHVALUES')}
