-- ckpt_direct_spec.lua — the .ckpt reader's direct path (engine/io/ckpt_read.c): a
-- Value laid out as MindSpore writes it (tag, then the TensorProto with tensor_content
-- last) has its content read from the file straight into the tensor's block; any other
-- layout is unpacked whole by protobuf-c. Both must give the bytes protobuf semantics
-- give (the last of repeated fields wins), for contents inside and past the reader's
-- 64 KiB buffer, and a bad length must stay a one-line error naming the file.
local H = require("spec.helper")
local spore = require("spore")

local function varint(n)
  local out = {}
  repeat
    local b = n % 128
    n = (n - b) / 128
    out[#out + 1] = string.char(b + (n > 0 and 128 or 0))
  until n == 0
  return table.concat(out)
end
local function field(num, s) return varint(num * 8 + 2) .. varint(#s) .. s end
local function dims(d)
  local out = {}
  for _, x in ipairs(d) do out[#out + 1] = varint(8) .. varint(x) end
  return table.concat(out)
end
-- n float32 values 0, 1, 2, ... as little-endian bytes (exact in float32 for n < 2^24)
local function floats(n)
  local ffi = require("ffi")
  local a = ffi.new("float[?]", n)
  for i = 0, n - 1 do a[i] = i % 4096 end
  return ffi.string(a, n * 4)
end
local function record(value) return field(1, value) end

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

local function load(name, records)
  local p = dir .. "/" .. name .. ".ckpt"
  H.write_file(p, table.concat(records))
  return spore.load_checkpoint(p), p
end

describe("ckpt reader: direct reads into the tensor's block", function()
  for _, n in ipairs({ 3, 20000, 300000 }) do -- inside the 64 KiB buffer, across it, far past it
    local content = floats(n)
    local std = record(field(1, "w") .. field(2, dims({ n }) .. field(2, "Float32") .. field(3, content)))
    -- the same tensor in layouts the direct path leaves to protobuf-c
    local content_first = record(field(1, "w") .. field(2, field(3, content) .. dims({ n }) .. field(2, "Float32")))
    local tag_last = record(field(2, dims({ n }) .. field(2, "Float32") .. field(3, content)) .. field(1, "w"))
    local twice = record(field(1, "w") .. field(2, dims({ n }) .. field(2, "Float32") .. field(3, ("x"):rep(4 * n))
      .. field(3, content)))
    -- a non-canonical key for tensor_content (0x9a 0x00 = field 3, length-delimited)
    local long_key = record(field(1, "w") .. field(2, dims({ n }) .. field(2, "Float32") .. "\154\0" ..
      varint(#content) .. content))
    it(("gives the same bytes in every layout (%d floats)"):format(n), function()
      for name, rec in pairs({ std = std, content_first = content_first, tag_last = tag_last, twice = twice,
                               long_key = long_key }) do
        local d = load(name .. n, { rec, record(field(1, "b") .. field(2, dims({ 2 }) .. field(2, "Int32") ..
          field(3, "\1\0\0\0\2\0\0\0"))) })
        assert.same({ "w", "b" }, spore.ckpt.keys(d), name)
        assert.same({ n }, d.w:shape(), name)
        assert.is_true(H.bytes_of(d.w) == content, name .. ": bytes differ")
        assert.is_true(H.bytes_of(d.b) == "\1\0\0\0\2\0\0\0", name)
      end
    end)
  end

  it("refuses a content length past the record, naming the file", function()
    local content = floats(40000)
    -- the content claims 8 bytes more than the record holds
    local tensor = dims({ 40000 }) .. field(2, "Float32") .. varint(26) .. varint(#content + 8) .. content
    local value = field(1, "w") .. varint(18) .. varint(#tensor) .. tensor
    local p = dir .. "/bad_len.ckpt"
    H.write_file(p, record(value))
    local ok, err = pcall(spore.load_checkpoint, p)
    assert.is_false(ok)
    assert.matches("bad_len.ckpt", tostring(err), 1, true)
    assert.is_nil(tostring(err):find("\n"))
  end)

  it("reads slices of one tensor straight into one block, with the CRC checked", function()
    local t = spore.arange(0, 300000, 1, "float32")
    local p = dir .. "/sliced.ckpt"
    spore.ckpt.write_raw(p, { { name = "big", tensor = t } }, { slice = 400000, crc_check = true })
    local d = spore.load_checkpoint(p, { crc_check = true })
    assert.is_true(H.bytes_of(d.big) == H.bytes_of(t))
    -- one byte flipped inside a content read past the buffer: a CRC mismatch, not a load
    local s = H.read_file(p)
    local at = 900000
    H.write_file(p, s:sub(1, at - 1) .. string.char((s:byte(at) + 1) % 256) .. s:sub(at + 1))
    local ok, err = pcall(spore.load_checkpoint, p, { crc_check = true })
    assert.is_false(ok)
    assert.matches("CRC mismatch", tostring(err), 1, true)
  end)
end)
