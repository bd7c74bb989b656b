-- DEFLATE (RFC 1951) in plain Lua for the permessage-deflate specs, written
-- apart from zlib so that the server's bytes are checked by a second
-- implementation: a compressor that writes fixed-Huffman literals (and the
-- sync-flush end of RFC 7692 §7.2.1, its 00 00 ff ff removed), a small
-- dynamic block of zeros for decompression bombs, and an inflater that may
-- keep its window between messages (context takeover).
local deflate = {}

-- Bits go out least significant first (RFC 1951 §3.1.1).
local Bits = {}
Bits.__index = Bits

local function bits_new()
  return setmetatable({ out = {}, acc = 0, n = 0 }, Bits)
end

function Bits:put(value, count)
  self.acc = self.acc | (value << self.n)
  self.n = self.n + count
  while self.n >= 8 do
    self.out[#self.out + 1] = string.char(self.acc & 0xff)
    self.acc = self.acc >> 8
    self.n = self.n - 8
  end
end

-- A Huffman code goes out most significant bit first.
function Bits:code(code, len)
  local rev = 0
  for _ = 1, len do
    rev = (rev << 1) | (code & 1)
    code = code >> 1
  end
  self:put(rev, len)
end

-- The sync flush's empty stored block, up to its LEN: the header bits, then
-- padding to a byte. The 00 00 ff ff that would follow is left out, as a
-- permessage-deflate sender does.
function Bits:sync_flush()
  self:put(0, 3)
  if self.n > 0 then
    self:put(0, 8 - self.n)
  end
  return table.concat(self.out)
end

-- The fixed literal/length code of symbol v (RFC 1951 §3.2.6).
local function fixed_symbol(b, v)
  if v < 144 then
    b:code(0x30 + v, 8)
  elseif v < 256 then
    b:code(0x190 + v - 144, 9)
  elseif v < 280 then
    b:code(v - 256, 7)
  else
    b:code(0xc0 + v - 280, 8)
  end
end

-- The compressed payload of a message s: one fixed-Huffman block of
-- literals (not final), then the sync flush. Matches are never used, so the
-- payload is a little larger than s: only the peer's inflater is tested.
function deflate.compress(s)
  local b = bits_new()
  b:put(0, 1) -- BFINAL
  b:put(1, 2) -- BTYPE 01: fixed Huffman codes
  for i = 1, #s do
    fixed_symbol(b, s:byte(i))
  end
  fixed_symbol(b, 256)
  return b:sync_flush()
end

-- The compressed payload of n zero bytes, n = 1 + 258 k, at two bits per 258
-- bytes: one dynamic block whose codes are literal 0 ("10"), length 258
-- ("0"), end of block ("11") and distance 1 ("0"). 10 MiB is about 10 KB.
function deflate.zeros(n)
  local k = (n - 1) // 258
  assert(n == 1 + 258 * k, "zeros(n) needs n = 1 + 258 k")
  local b = bits_new()
  b:put(0, 1) -- BFINAL
  b:put(2, 2) -- BTYPE 10: dynamic Huffman codes
  b:put(286 - 257, 5) -- HLIT
  b:put(1 - 1, 5) -- HDIST
  b:put(18 - 4, 4) -- HCLEN
  -- Code length code lengths, in their order: symbol 18 gets 1 bit, 1 and 2
  -- get 2 bits (codes: 18 "0", 1 "10", 2 "11").
  local lengths = { [18] = 1, [1] = 2, [2] = 2 }
  for _, sym in ipairs { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1 } do
    b:put(lengths[sym] or 0, 3)
  end
  local function length(v)
    if v == 1 then
      b:code(2, 2)
    else
      b:code(3, 2)
    end
  end
  local function zero_run(count) -- symbol 18: 11 to 138 zero lengths
    b:code(0, 1)
    b:put(count - 11, 7)
  end
  length(2) -- literal 0
  zero_run(138)
  zero_run(117) -- literals 1..255
  length(2) -- end of block
  zero_run(28) -- lengths 257..284
  length(1) -- length 258
  length(1) -- distance 1
  b:code(2, 2) -- literal 0
  for _ = 1, k do
    b:put(0, 2) -- length 258, distance 1
  end
  b:code(3, 2) -- end of block
  return b:sync_flush()
end

-- Inflating.

local LBASE = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
  67, 83, 99, 115, 131, 163, 195, 227, 258 }
local LEXT = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
  5, 5, 5, 5, 0 }
local DBASE = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
  769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 }
local DEXT = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
  11, 11, 12, 12, 13, 13 }
local CL_ORDER = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 }

-- A canonical Huffman code from code lengths lens[0..n-1]: counts per
-- length and the symbols in code order (as zlib's puff.c).
local function huffman(lens, n)
  local count, offs, symbol = {}, {}, {}
  for len = 0, 15 do
    count[len] = 0
  end
  for s = 0, n - 1 do
    count[lens[s]] = count[lens[s]] + 1
  end
  offs[1] = 0
  for len = 1, 14 do
    offs[len + 1] = offs[len] + count[len]
  end
  for s = 0, n - 1 do
    if lens[s] ~= 0 then
      symbol[offs[lens[s]] + 1] = s
      offs[lens[s]] = offs[lens[s]] + 1
    end
  end
  return { count = count, symbol = symbol }
end

local fixed_lit, fixed_dist
do
  local lens = {}
  for s = 0, 287 do
    lens[s] = s < 144 and 8 or s < 256 and 9 or s < 280 and 7 or 8
  end
  fixed_lit = huffman(lens, 288)
  local dl = {}
  for s = 0, 29 do
    dl[s] = 5
  end
  fixed_dist = huffman(dl, 30)
end

local Inflater = {}
Inflater.__index = Inflater

-- An inflater; with takeover, later messages may refer to earlier ones.
function deflate.inflater(takeover)
  return setmetatable({ takeover = takeover, window = {} }, Inflater)
end

-- Inflates one message's payload (the 00 00 ff ff tail is put back here);
-- returns the message, or raises on bad data.
function Inflater:message(payload)
  local data = payload .. "\0\0\255\255"
  local pos, buf, cnt = 1, 0, 0
  local function bits(n)
    while cnt < n do
      local c = data:byte(pos)
      if not c then
        error("inflate: out of input", 0)
      end
      pos = pos + 1
      buf = buf | (c << cnt)
      cnt = cnt + 8
    end
    local v = buf & ((1 << n) - 1)
    buf = buf >> n
    cnt = cnt - n
    return v
  end
  local function decode(h)
    local code, first, index = 0, 0, 0
    for len = 1, 15 do
      code = code | bits(1)
      local count = h.count[len]
      if code - count < first then
        return h.symbol[index + code - first + 1]
      end
      index = index + count
      first = (first + count) << 1
      code = code << 1
    end
    error("inflate: bad code", 0)
  end
  local out = {}
  if self.takeover then
    table.move(self.window, 1, #self.window, 1, out)
  end
  local start = #out + 1
  local function codes(lit, dist)
    while true do
      local sym = decode(lit)
      if sym < 256 then
        out[#out + 1] = sym
      elseif sym == 256 then
        return
      else
        sym = sym - 257
        local len = LBASE[sym + 1] + bits(LEXT[sym + 1])
        local d = decode(dist)
        local back = DBASE[d + 1] + bits(DEXT[d + 1])
        local from = #out - back
        if from < 0 then
          error("inflate: distance too far back", 0)
        end
        for i = 1, len do
          out[#out + 1] = out[from + i]
        end
      end
    end
  end
  repeat
    local last = bits(1)
    local kind = bits(2)
    if kind == 0 then
      buf, cnt = 0, 0
      local len, nlen = string.unpack("<I2I2", data, pos)
      assert(len ~ 0xffff == nlen, "inflate: stored block length")
      for i = pos + 4, pos + 3 + len do
        out[#out + 1] = data:byte(i)
      end
      pos = pos + 4 + len
    elseif kind == 1 then
      codes(fixed_lit, fixed_dist)
    elseif kind == 2 then
      local nlen, ndist, ncode = bits(5) + 257, bits(5) + 1, bits(4) + 4
      local cl = {}
      for i = 0, 18 do
        cl[i] = 0
      end
      for i = 1, ncode do
        cl[CL_ORDER[i]] = bits(3)
      end
      local clh = huffman(cl, 19)
      local lens, i = {}, 0
      while i < nlen + ndist do
        local sym = decode(clh)
        if sym < 16 then
          lens[i] = sym
          i = i + 1
        else
          local v, rep = 0, nil
          if sym == 16 then
            v, rep = lens[i - 1], 3 + bits(2)
          elseif sym == 17 then
            rep = 3 + bits(3)
          else
            rep = 11 + bits(7)
          end
          for _ = 1, rep do
            lens[i] = v
            i = i + 1
          end
        end
      end
      local dl = {}
      for j = 0, ndist - 1 do
        dl[j] = lens[nlen + j]
      end
      codes(huffman(lens, nlen), huffman(dl, ndist))
    else
      error("inflate: bad block type", 0)
    end
  until last == 1 or (pos > #data and cnt < 8)
  if self.takeover then
    self.window = table.move(out, math.max(1, #out - 32767), #out, 1, {})
  end
  local parts = {}
  for i = start, #out, 4096 do
    parts[#parts + 1] = string.char(table.unpack(out, i, math.min(i + 4095, #out)))
  end
  return table.concat(parts)
end

-- The message a payload inflates to, without context.
function deflate.inflate(payload)
  return deflate.inflater(false):message(payload)
end

return deflate
