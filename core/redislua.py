"""The Lua scripts of the Redis store (`modelway.stateredis`), and how their words are read.

`BATCH` is everything one event-loop turn of one process asks of the shared state, in one
round trip: the settlements queued since the last batch, then the reservations of the turn,
group by group (each group all-or-nothing, as `StateStore.reserve_all` promises). A batch
names each distinct key once (`KEYS`); its work is two strings of words that refer to the
keys by their index, and its answer is one string of words: a flat encoding that costs the
client one split instead of a nested reply parsed value by value, and the server one read
and at most one write per key and batch.

Windows are hashes (`id`: the window's id, `u`: what is used) that expire when the window
ends; ids are Redis's clock (`TIME`) in milliseconds when the window started.

`DELETE_IF` is `StateStore.delete_if`: the comparison and the deletion in one step.
"""

from __future__ import annotations

NONE = "-"
"""The word for "no window" (a plain counter), "no expiry" and "no window id"."""

BATCH = """
-- ARGV[1], settlements, 4 words each: key window amount ttl_ms ('-': a plain counter, no ttl).
-- ARGV[2], reservations: per group its size n, then n times: key amount limit window_ms.
-- The answer, 4 words per ask: fit (1 or 0), used, ms left in its window, window id.
local function words(text)
  local found = {}
  for word in string.gmatch(text, '%S+') do found[#found + 1] = word end
  return found
end
local function num(x) return string.format('%.17g', x) end
local s = words(ARGV[1])
for i = 1, #s, 4 do
  local key, window, amount, ttl = KEYS[tonumber(s[i])], s[i + 1], s[i + 2], s[i + 3]
  if window == '-' then
    redis.call('INCRBYFLOAT', key, amount)
    if ttl ~= '-' and redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ttl) end
  elseif redis.call('HGET', key, 'id') == window then
    redis.call('HINCRBYFLOAT', key, 'u', amount)
  end
end
local r = words(ARGV[2])
if #r == 0 then return '' end
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local windows, order, out, a = {}, {}, {}, 1
while a <= #r do
  local n, all, fits = tonumber(r[a]), true, {}
  for i = 1, n do
    local j = a + 4 * i - 3
    local w = windows[r[j]]
    if w == nil then
      local key = KEYS[tonumber(r[j])]
      local got = redis.call('HMGET', key, 'id', 'u')
      w = {id = false, used = 0, left = 0, added = 0, new = false}
      if got[1] then
        w.id, w.used, w.left = got[1], tonumber(got[2] or '0'), redis.call('PTTL', key)
      end
      windows[r[j]] = w
      order[#order + 1] = r[j]
    end
    local amount = tonumber(r[j + 1])
    fits[i] = amount <= 0 or w.used + amount <= tonumber(r[j + 2])
    if not fits[i] then all = false end
  end
  for i = 1, n do
    local j = a + 4 * i - 3
    local w = windows[r[j]]
    if all then
      if not w.id then w.id, w.left, w.new = now, tonumber(r[j + 3]), r[j + 3] end
      local amount = tonumber(r[j + 1])
      w.used, w.added = w.used + amount, w.added + amount
    end
    local left = w.id and w.left or r[j + 3]
    out[#out + 1] = (fits[i] and '1 ' or '0 ') .. num(w.used) .. ' ' .. left .. ' ' .. (w.id or '-')
  end
  a = a + 1 + 4 * n
end
for _, k in ipairs(order) do
  local w, key = windows[k], KEYS[tonumber(k)]
  if w.new then
    redis.call('HSET', key, 'id', w.id, 'u', num(w.used))
    redis.call('PEXPIRE', key, w.new)
  elseif w.added ~= 0 then
    redis.call('HINCRBYFLOAT', key, 'u', num(w.added))
  end
end
return table.concat(out, ' ')
"""

MERGE = """
local a = 1
for op = 1, 3 do
  local n = tonumber(ARGV[a])
  a = a + 1
  for i = 1, n do
    local field, value = ARGV[a], ARGV[a + 1]
    if op == 1 then
      redis.call('HINCRBYFLOAT', KEYS[1], field, value)
    else
      local old = tonumber(redis.call('HGET', KEYS[1], field))
      local new = tonumber(value)
      if old == nil or (op == 2 and new > old) or (op == 3 and new < old) then
        redis.call('HSET', KEYS[1], field, value)
      end
    end
    a = a + 2
  end
end
return 1
"""

DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

ADD = """
local value = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if ARGV[2] ~= '-' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""
"""A plain counter's increment and its new value in one step (`StateStore.add`)."""
