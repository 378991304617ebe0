-- KEYS: seq epoch. ARGV: fresh epoch, known epoch, known seq.
-- A sequence below what this replica has seen under the same epoch means
-- Redis came back from an older copy: a new epoch, so no id is reused.
local epoch = redis.call('GET', KEYS[2])
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
if not epoch or (epoch == ARGV[2] and seq < tonumber(ARGV[3])) then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
return {epoch, seq}
