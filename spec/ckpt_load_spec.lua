-- ckpt_load_spec.lua — load_checkpoint against the real MindSpore LeNet checkpoint
-- (bit-exact with an independent python-protobuf decoder) and the MindSpore-written
-- goldens in spec/fixtures (names, types, shapes, SHA-256), CRC, encryption, filters,
-- malformed files.
local H = require("spec.helper")
local spore = require("spore")
local ckpt = spore.ckpt
local json = require("spore.json")

local PY = "/usr/bin/python3"

local read_file = H.read_file
local write_file = H.write_file
local bytes_of = H.bytes_of

--- Independent decode: list of {tag, type, dims (nil = none), nbytes, wire, content}.
local function pydecode(path)
  local dir = H.tmpdir()
  local out, rc = H.run(PY .. " scripts/bench/ckpt_pydecode.py dump '" .. path .. "' " .. dir .. " 2>&1")
  assert(rc == 0, "python decoder failed: " .. out)
  local list = {}
  for line in io.lines(dir .. "/manifest.tsv") do
    local i, tag, ty, dims, nb, wire = line:match("^(%d+)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(%d+)\t(%w+)$")
    local d
    if dims ~= "-" then d = {} for x in dims:gmatch("[^,]+") do d[#d + 1] = tonumber(x) end end
    list[#list + 1] = { tag = tag, type = ty, dims = d, nbytes = tonumber(nb), wire = wire,
      content = read_file(dir .. "/" .. i .. ".bin") }
  end
  os.execute("rm -rf " .. dir)
  return list
end

local sha256_all = H.sha256_all

local function sidecar(name)
  local p = H.local_fixture(name .. ".json")
  if not p then return nil end
  return json.decode(read_file(p))
end

describe("load_checkpoint: the real MindSpore LeNet checkpoint", function()
  local path, why = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
  it("has 18 tensors with MindSpore's names, shapes and dtypes, bit-exact with python protobuf", function()
    if not path then return pending("SKIPPED: " .. why) end
    local d = spore.load_checkpoint(path)
    local keys = ckpt.keys(d)
    assert.equal(18, #keys)
    local ref = pydecode(path)
    assert.equal(18, #ref)
    for i, r in ipairs(ref) do
      assert.equal(r.tag, keys[i])
      local t = d[r.tag]
      assert.equal(r.type:lower(), t:dtype())
      local want = r.dims or {}
      if #want == 1 and want[1] == 0 then want = {} end -- old-style scalar
      assert.same(want, t:shape())
      assert.equal(r.nbytes, t:nbytes())
      assert.is_true(r.content == bytes_of(t), "bytes differ for " .. r.tag)
    end
    assert.same({ 6, 1, 5, 5 }, d["conv1.weight"]:shape())
    assert.same({}, d["learning_rate"]:shape())
    assert.same({ 120, 400 }, d["moments.fc1.weight"]:shape())
  end)
  it("keys() and ordered pairs()", function()
    if not path then return pending("SKIPPED: " .. why) end
    local d = spore.load_checkpoint(path)
    assert.equal("conv1.weight", d:keys()[1])
    local n = 0
    for k, v in ckpt.pairs(d) do n = n + 1; assert.is_true(spore.is_tensor(v)); assert.is_string(k) end
    assert.equal(18, n)
  end)
end)

describe("load_checkpoint: MindSpore 2.10 goldens", function()
  local files = { "ms_small.ckpt", "ms_small_crc.ckpt", "ms_bf16.ckpt", "ms_momentum.ckpt", "ms_momentum_dynlr.ckpt",
    "ms_adam.ckpt", "hand_packed.ckpt", "hand_unpacked.ckpt", "lenet_init.ckpt", "ms_small.safetensors",
    "ms_small_crc.safetensors" }
  for _, f in ipairs(files) do
    it(f .. ": names in order, types, shapes and SHA-256 match the sidecar", function()
      local p, why = H.local_fixture(f)
      local sc = sidecar(f)
      if not p or not sc then return pending("SKIPPED: " .. (why or (f .. ".json missing"))) end
      local d = spore.load_checkpoint(p, { crc_check = sc.crc ~= nil or nil })
      local keys = ckpt.keys(d)
      local blobs, want = {}, {}
      for i, e in ipairs(sc.tensors) do
        assert.equal(e.name, keys[i])
        local v = d[e.name]
        if e.tensor_type == "str" then
          assert.equal(e.value, v)
        else
          local ty = e.ms_dtype or e.tensor_type
          assert.equal(spore.dtypes[require("ffi.tensor").dtype_code(ty)], v:dtype())
          assert.same(e.shape, v:shape())
          blobs[#blobs + 1] = bytes_of(v); want[#blobs] = e.sha256
        end
      end
      assert.equal(#sc.tensors, #keys)
      local got = sha256_all(blobs)
      for i = 1, #blobs do assert.equal(want[i], got[i]) end
    end)
  end

  it("ms_momentum.ckpt: optimizer state names and values", function()
    local p, why = H.local_fixture("ms_momentum.ckpt")
    if not p then return pending("SKIPPED: " .. why) end
    local d = spore.load_checkpoint(p)
    assert.same({ 1 }, d.global_step:shape())
    assert.equal("int32", d.global_step:dtype())
    assert.equal(2, d.global_step:get({ 1 }))
    assert.same({}, d.learning_rate:shape())
    assert.near(0.9, d.momentum:item(), 1e-7)
    assert.is_not_nil(d["moments.conv.weight"])
    local dyn = spore.load_checkpoint(H.local_fixture("ms_momentum_dynlr.ckpt"))
    assert.same({ 4 }, dyn.learning_rate:shape())
    assert.equal("learning_rate", ckpt.keys(dyn)[#ckpt.keys(dyn)])
  end)
end)

describe("load_checkpoint: CRC", function()
  it("verifies crc_num when asked and fails clearly on a mismatch", function()
    local p, why = H.local_fixture("ms_small_crc.ckpt")
    if not p then return pending("SKIPPED: " .. why) end
    assert.is_not_nil(spore.load_checkpoint(p, { crc_check = true })["conv.weight"])
    local s = read_file(p)
    local dir = H.tmpdir()
    local bad = dir .. "/bad.ckpt"
    write_file(bad, s:sub(1, 100) .. string.char((s:byte(101) + 1) % 256) .. s:sub(102))
    local ok, err = pcall(spore.load_checkpoint, bad, { crc_check = true })
    assert.is_false(ok)
    assert.matches("bad.ckpt': CRC mismatch", err, 1, true)
    -- without crc_check the trailer is still stripped
    assert.is_not_nil(spore.load_checkpoint(p)["conv.weight"])
    local ok2, err2 = pcall(spore.load_checkpoint, H.local_fixture("ms_small.ckpt"), { crc_check = true })
    assert.is_false(ok2)
    assert.matches("no crc_num trailer", err2, 1, true)
    os.execute("rm -rf " .. dir)
  end)
end)

describe("load_checkpoint: decryption", function()
  for _, m in ipairs({ { "ms_enc_gcm.ckpt", "AES-GCM" }, { "ms_enc_cbc.ckpt", "AES-CBC" }, { "ms_enc_sm4.ckpt", "SM4-CBC" } }) do
    it(m[1] .. " decrypts to ms_small.ckpt; a wrong key or no key fails clearly", function()
      local p, why = H.local_fixture(m[1])
      if not p then return pending("SKIPPED: " .. why) end
      local plain = spore.load_checkpoint(H.local_fixture("ms_small.ckpt"))
      local d = spore.load_checkpoint(p, { dec_key = "0123456789abcdef", dec_mode = m[2] })
      assert.same(ckpt.keys(plain), ckpt.keys(d))
      for _, k in ipairs(ckpt.keys(plain)) do
        if type(plain[k]) == "string" then assert.equal(plain[k], d[k])
        else assert.is_true(bytes_of(plain[k]) == bytes_of(d[k]), k) end
      end
      local ok, err = pcall(spore.load_checkpoint, p, { dec_key = "0123456789abcdeZ", dec_mode = m[2] })
      assert.is_false(ok)
      assert.matches(m[1], err, 1, true)
      ok, err = pcall(spore.load_checkpoint, p)
      assert.is_false(ok)
      assert.matches("encrypted.*pass dec_key", err)
    end)
  end
end)

describe("load_checkpoint: filters", function()
  it("specify_prefix, filter_prefix, choice_func as MindSpore", function()
    local p, why = H.local_fixture("ms_momentum.ckpt")
    if not p then return pending("SKIPPED: " .. why) end
    local d = spore.load_checkpoint(p, { specify_prefix = "moments." })
    for _, k in ipairs(ckpt.keys(d)) do assert.matches("^moments%.", k) end
    d = spore.load_checkpoint(p, { filter_prefix = { "moments.", "learning_rate", "global_step" } })
    assert.is_nil(d["moments.conv.weight"]); assert.is_nil(d.learning_rate); assert.is_not_nil(d["conv.weight"])
    d = spore.load_checkpoint(p, { choice_func = function(n) return not n:match("^learning_rate") and not n:match("^global_step") end })
    assert.is_nil(d.learning_rate); assert.is_nil(d.global_step); assert.is_not_nil(d.momentum)
    -- choice_func is ignored when a prefix is given (MindSpore)
    d = spore.load_checkpoint(p, { specify_prefix = "conv", choice_func = function() return false end })
    assert.is_not_nil(d["conv.weight"])
    local ok, err = pcall(spore.load_checkpoint, p, { specify_prefix = "nothing" })
    assert.is_false(ok)
    assert.matches("no parameters left after", err)
  end)
end)

describe("load_checkpoint: malformed files give one clear error naming the file", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)
  local function fails(content, pattern)
    local p = dir .. "/x.ckpt"
    write_file(p, content)
    local ok, err = pcall(spore.load_checkpoint, p)
    assert.is_false(ok)
    assert.matches("x.ckpt", err, 1, true)
    assert.matches(pattern, err)
    assert.is_nil(err:find("\n"), "one line")
    assert.is_nil(err:find("traceback"), "no traceback")
  end
  it("empty file", function() fails("", "empty file") end)
  it("a text file", function() fails("This is not a checkpoint at all\n", "not a MindSpore checkpoint") end)
  it("a PNG header", function() fails("\137PNG\r\n\26\n\0\0\0\rIHDR", "not a MindSpore checkpoint") end)
  it("a truncated checkpoint names the tensor before the cut", function()
    local p = H.local_fixture("ms_small.ckpt")
    if not p then return pending("SKIPPED: ms_small.ckpt missing") end
    fails(read_file(p):sub(1, 600), "truncated")
  end)
  it("a missing file", function()
    local ok, err = pcall(spore.load_checkpoint, dir .. "/nope.ckpt")
    assert.is_false(ok)
    assert.matches("nope.ckpt': cannot open", err, 1, true)
  end)
  it("an unknown tensor_type errors unless on_unknown_dtype = 'skip'", function()
    -- Value{tag "w", tensor{dims [1], type "Float33", content 4 bytes}}
    local tp = "\8\1" .. "\18\7Float33" .. "\26\4\0\0\128\63"
    local val = "\10\1w" .. "\18" .. string.char(#tp) .. tp
    local okv = "\10\1v" .. "\18" .. string.char(#tp) .. tp:gsub("Float33", "Float32")
    local content = "\10" .. string.char(#val) .. val .. "\10" .. string.char(#okv) .. okv
    fails(content, "tensor 'w': unknown tensor_type 'Float33'")
    local d = spore.load_checkpoint(dir .. "/x.ckpt", { on_unknown_dtype = "skip" })
    assert.same({ "v" }, ckpt.keys(d))
    assert.equal(1, d.v:get({ 1 }))
  end)
end)
