-- ckpt_strict_spec.lua — readers as strict as the references, and bounded (issue #13).
-- Every file here is crafted byte by byte: safetensors with overlapping ranges, gaps,
-- trailing bytes, NUL padding, non-adjacent duplicate keys (refused, each with its
-- message; space padding accepted), .ckpt files with a name twice or a NUL in a name
-- (refused), a .pth whose 2,000 entries view one storage (they share it; peak RSS of a
-- fresh process within 2 x file + 64 MB), and big files that must parse in linear time.
local H = require("spec.helper")
local spore = require("spore")
local bit = require("bit")
local ffi = require("ffi")

local function le(v, n)
  local t = {}
  for i = 1, n do t[i] = string.char(v % 256); v = math.floor(v / 256) end
  return table.concat(t)
end

---------------------------------------------------------------- builders
local function safetensors(header, pad, data_len)
  local h = header .. (pad or "")
  local d = {}
  for i = 0, data_len - 1 do d[#d + 1] = string.char(i % 256) end
  return le(#h, 8) .. h .. table.concat(d)
end

local function varint(v)
  local t = {}
  while v >= 128 do t[#t + 1] = string.char(bit.bor(v % 128, 128)); v = math.floor(v / 128) end
  t[#t + 1] = string.char(v)
  return table.concat(t)
end
local function ld(field, s) return varint(field * 8 + 2) .. varint(#s) .. s end
-- one Checkpoint record: Value{tag, TensorProto{dims {2}, "Float32", two floats}}
local function ckpt_record(tag)
  local tp = varint(8) .. varint(2) .. ld(2, "Float32") .. ld(3, string.rep("\0", 8))
  return ld(1, ld(1, tag) .. ld(2, tp))
end

local function zip(entries)
  local out, cd, offs = {}, {}, {}
  local pos = 0
  for i, e in ipairs(entries) do
    offs[i] = pos
    local rec = le(0x04034b50, 4) .. le(20, 2) .. le(0, 2) .. le(0, 2) .. le(0, 4) .. le(0, 4)
      .. le(#e[2], 4) .. le(#e[2], 4) .. le(#e[1], 2) .. le(0, 2) .. e[1] .. e[2]
    out[#out + 1] = rec
    pos = pos + #rec
  end
  for i, e in ipairs(entries) do
    cd[#cd + 1] = le(0x02014b50, 4) .. le(20, 2) .. le(20, 2) .. le(0, 2) .. le(0, 2) .. le(0, 4) .. le(0, 4)
      .. le(#e[2], 4) .. le(#e[2], 4) .. le(#e[1], 2) .. le(0, 2) .. le(0, 2) .. le(0, 2) .. le(0, 2) .. le(0, 4)
      .. le(offs[i], 4) .. e[1]
  end
  local cds = table.concat(cd)
  return table.concat(out) .. cds .. le(0x06054b50, 4) .. le(0, 2) .. le(0, 2) .. le(#entries, 2)
    .. le(#entries, 2) .. le(#cds, 4) .. le(pos, 4) .. le(0, 2)
end
local function pstr(s) return "X" .. le(#s, 4) .. s end
local function pint(v) return "J" .. le(v, 4) end

-- {"w<j>": view of numel - 8n floats at offset 8j of the one FloatStorage '0' (numel floats)}
local function pth_shared(n, numel)
  local p = { "\128\2}(" }
  for j = 0, n - 1 do
    p[#p + 1] = pstr("w" .. j) .. "ctorch._utils\n_rebuild_tensor_v2\n((" .. pstr("storage")
      .. "ctorch\nFloatStorage\n" .. pstr("0") .. pstr("cpu") .. pint(numel) .. "tQ" .. pint(j * 8)
      .. pint(numel - 8 * n) .. "\133" .. pint(1) .. "\133" .. "\137" .. "ccollections\nOrderedDict\n)RtR"
  end
  p[#p + 1] = "u."
  local f = ffi.new("float[?]", numel)
  for i = 0, numel - 1 do f[i] = i end
  return zip({ { "archive/data.pkl", table.concat(p) }, { "archive/data/0", ffi.string(f, numel * 4) },
    { "archive/version", "3\n" } })
end

-- {"k<i>": i} for i < n, SETITEMS in batches of 1000 (as pickle writes dicts)
local function pth_dict(n)
  local p = { "\128\2}" }
  for i = 0, n - 1 do
    if i % 1000 == 0 then p[#p + 1] = "(" end
    local k = "k" .. i
    p[#p + 1] = "\140" .. string.char(#k) .. k .. pint(i)
    if i % 1000 == 999 or i == n - 1 then p[#p + 1] = "u" end
  end
  p[#p + 1] = "."
  return zip({ { "archive/data.pkl", table.concat(p) }, { "archive/version", "3\n" } })
end

-- n F32 [1] tensors t%07d with a correct crc_num (MindSpore: crc over sorted name .. bytes)
local function st_many(n)
  local crc = 0
  local parts, data = {}, {}
  for i = 0, n - 1 do
    local name = string.format("t%07d", i)
    local v = le(i, 4)
    crc = require("ffi.ckpt").crc32(name .. v, crc)
    parts[#parts + 1] = string.format(',"%s":{"dtype":"I32","shape":[1],"data_offsets":[%d,%d]}', name, 4 * i,
      4 * i + 4)
    data[#data + 1] = v
  end
  local h = '{"__metadata__":{"crc_num":"' .. string.format("%d", crc) .. '"}' .. table.concat(parts) .. "}"
  return le(#h, 8) .. h .. table.concat(data)
end

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. dir) end)

local function file(name, bytes)
  local p = dir .. "/" .. name
  H.write_file(p, bytes)
  return p
end

local function refused(path, ...)
  local ok, err = pcall(spore.load_checkpoint, path)
  assert.is_false(ok, "loaded " .. path)
  err = tostring(err)
  assert.is_nil(err:find("\n"), err)
  assert.truthy(err:find(path, 1, true), err)
  for _, want in ipairs({ ... }) do assert.truthy(err:find(want, 1, true), "want '" .. want .. "' in: " .. err) end
end

describe("safetensors is read as strictly as the reference parser", function()
  local A = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
  it("refuses overlapping ranges, gaps, trailing bytes, NUL padding and duplicate keys, naming each", function()
    refused(file("overlap.safetensors", safetensors("{" .. A
      .. ',"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', "", 12)), "tensor 'b'", "overlap tensor 'a'")
    refused(file("gap.safetensors", safetensors("{" .. A
      .. ',"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}', "", 20)), "tensor 'b'", "gap of 4 bytes",
      "expected it to begin at 8")
    refused(file("trailing.safetensors", safetensors("{" .. A .. "}", "", 13)), "5 trailing bytes after tensor 'a'")
    refused(file("nul.safetensors", safetensors("{" .. A .. "}", "\0\0\0", 8)), "0x00", "padding must be spaces")
    refused(file("dup.safetensors", safetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
      .. '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
      .. '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', "", 12)), "tensor 'a' appears twice")
    -- the amplification shape: every tensor over the same bytes
    local many = {}
    for i = 1, 50 do many[i] = string.format('"t%d":{"dtype":"F32","shape":[256],"data_offsets":[0,1024]}', i) end
    refused(file("amp.safetensors", safetensors("{" .. table.concat(many, ",") .. "}", "", 1024)), "overlap tensor")
  end)

  it("accepts a header padded with spaces", function()
    local d = spore.load_checkpoint(file("spaces.safetensors", safetensors("{" .. A .. "}", "      ", 8)))
    assert.same({ 2 }, d.a:shape())
  end)
end)

describe(".ckpt names", function()
  it("refuses a name twice (MindSpore keeps the first, spore kept the last)", function()
    refused(file("dup.ckpt", ckpt_record("a") .. ckpt_record("b") .. ckpt_record("a")), "tensor 'a' appears twice")
  end)
  it("refuses a NUL byte in a name (it used to drop a tensor)", function()
    refused(file("nul.ckpt", ckpt_record("a") .. ckpt_record("a\0b")), "NUL")
    local d = spore.load_checkpoint(file("ok.ckpt", ckpt_record("a") .. ckpt_record("b")))
    assert.same({ "a", "b" }, spore.ckpt.keys(d))
  end)
end)

describe(".pth amplification", function()
  it("2,000 entries over one storage share it: peak RSS of a fresh process <= 2 x file + 64 MB", function()
    -- each view covers most of the 256 KiB storage: a copy per entry would be 390 MB
    local path = file("shared.pth", pth_shared(2000, 65536))
    local size = #H.read_file(path)
    local d = spore.load_checkpoint(path)
    assert.is_true(d.w0:shares_storage(d.w1999))
    assert.same({ 49536 }, d.w1999:shape())
    assert.equal(1999 * 8, d.w1999:get({ 1 }))
    assert.equal(1999 * 8 + 49535, d.w1999:get({ 49536 }))
    d = nil
    collectgarbage()
    local child = dir .. "/rss.lua"
    H.write_file(child, [[
      package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
      local spore = require("spore")
      local function kb(field)
        for line in io.lines("/proc/self/status") do
          local v = line:match("^" .. field .. ":%s*(%d+)")
          if v then return tonumber(v) end
        end
      end
      local cr = io.open("/proc/self/clear_refs", "w")
      if cr then cr:write("5"); cr:close() end
      collectgarbage()
      local base = kb("VmHWM")
      local d = spore.load_checkpoint("]] .. path .. [[")
      io.write(string.format("delta_kb=%d\n", kb("VmHWM") - base))
    ]])
    local out, rc = H.run("luajit " .. child .. " 2>&1")
    assert.equal(0, rc, out)
    local delta = tonumber(out:match("delta_kb=(%-?%d+)"))
    assert.is_not_nil(delta, out)
    assert.is_true(delta * 1024 <= 2 * size + 64 * 2 ^ 20,
      string.format("peak RSS +%d kB for a %d-byte file", delta, size))
  end)

  it("a .pth dict parses in linear time (4x the entries: well under 8x the time)", function()
    local function t(n)
      local path = file("dict" .. n .. ".pth", pth_dict(n))
      local best = math.huge
      for _ = 1, 3 do
        local t0 = os.clock()
        local d = spore.load_checkpoint(path)
        best = math.min(best, os.clock() - t0)
        assert.equal(n - 1, d["k" .. (n - 1)]:get({}))
      end
      return best
    end
    local t1, t4 = t(2500), t(10000)
    assert.is_true(t4 < 8 * t1 + 0.05, string.format("2.5k %.3f s, 10k %.3f s", t1, t4))
  end)
end)

describe("big files parse fast #slow", function()
  it("a 60,000-entry .pth dict loads in under 2 s", function()
    local path = file("dict60k.pth", pth_dict(60000))
    local t0 = os.time()
    local c0 = os.clock()
    local d = spore.load_checkpoint(path)
    local dt = os.clock() - c0
    collectgarbage()
    assert.equal(59999, d.k59999:get({}))
    print(string.format("\n  60,000-entry .pth dict (%d bytes): %.2f s", #H.read_file(path), dt))
    assert.is_true(dt < 2 and os.time() - t0 <= 3, string.format("%.2f s", dt))
  end)

  it("a 200,000-entry safetensors file with crc_num verifies in a few seconds", function()
    local path = file("many.safetensors", st_many(200000))
    local c0 = os.clock()
    local d = spore.load_checkpoint(path, { crc_check = true })
    local dt = os.clock() - c0
    collectgarbage()
    assert.equal(199999, d.t0199999:get({ 1 }))
    print(string.format("\n  200,000-entry safetensors with crc_num: %.2f s", dt))
    assert.is_true(dt < 5, string.format("%.2f s", dt))
  end)
end)
