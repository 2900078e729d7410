-- ckpt_pth_spec.lua — PyTorch .pth files (torch.save's zip format) written by
-- scripts/gen/gen_pth_fixtures.py: names, dtypes, shapes and SHA-256 against the sidecar,
-- strided / offset views, the {"state_dict": ..., "epoch": 3} wrapper, the torch <->
-- MindSpore rename rules, LeNet logits against torch's, and hostile files.
local H = require("spec.helper")
local spore = require("spore")
local ckpt = spore.ckpt
local json = require("spore.json")
local ffi = require("ffi")

local read_file = H.read_file
local write_file = H.write_file
local bytes_of = H.bytes_of
local function fx(name) return H.root .. "/spec/fixtures/pth/" .. name end

local sha256_all = H.sha256_all

local side = json.decode(read_file(fx("pth_fixtures.json")))

describe("load_checkpoint on PyTorch .pth", function()
  it("matches the sidecar: names in order, dtypes, shapes, SHA-256 of every tensor", function()
    local files = {}
    for f in pairs(side.files) do files[#files + 1] = f end
    table.sort(files)
    assert.is_true(#files >= 7)
    for _, f in ipairs(files) do
      local d, rep = ckpt.load_checkpoint(fx(f))
      assert.is_nil(rep)
      local keys = ckpt.keys(d)
      local blobs, want, i = {}, {}, 0
      for _, e in ipairs(side.files[f]) do
        if e.skipped then
          assert.is_nil(d[e.name], f .. ": " .. e.name .. " should be skipped")
        else
          i = i + 1
          assert.equal(e.name, keys[i], f)
          local t = d[e.name]
          assert.equal(e.dtype, t:dtype(), f .. ": " .. e.name)
          assert.same(e.shape, t:shape(), f .. ": " .. e.name)
          if e.sha256 then blobs[#blobs + 1] = bytes_of(t); want[#blobs] = e.sha256
          else assert.equal(e.value == true and 1 or e.value == false and 0 or e.value, t:get({})) end
        end
      end
      assert.equal(i, #keys, f)
      local got = sha256_all(blobs)
      for k = 1, #blobs do assert.equal(want[k], got[k], f .. " blob " .. k) end
    end
  end)

  it("copies strided and offset views (shared storages) into contiguous tensors", function()
    local d = ckpt.load_checkpoint(fx("views.pth"))
    assert.same({ { 1, 2 }, { 7, 8 }, { 13, 14 }, { 19, 20 } }, d.cols:totable())
    assert.same({ 12, 13, 14, 15, 16, 17 }, d.row:totable())
    assert.same({ 0, 6, 12, 18 }, d.t:totable()[1])
    assert.same({ { 6, 8, 10 }, { 12, 14, 16 }, { 18, 20, 22 } }, d.step:totable())
    assert.same({ 2, 2, 2, 2 }, d.expand:totable()[3])
    assert.is_true(d.cols:is_contiguous())
  end)

  it("detects .pth from content (any extension), and format=\"pth\" insists on it", function()
    local dir = H.tmpdir()
    os.execute("cp " .. fx("tiny_net.pth") .. " " .. dir .. "/weights.bin")
    local d = ckpt.load_checkpoint(dir .. "/weights.bin")
    assert.equal(9, #ckpt.keys(d))
    assert.equal("pth", ckpt.read_raw(dir .. "/weights.bin").format)
    d = ckpt.load_checkpoint(fx("tiny_net.pth"), { format = "pth" })
    assert.equal("int64", d["bn.num_batches_tracked"]:dtype())
    assert.same({}, d["bn.num_batches_tracked"]:shape())
    assert.equal(7, d["bn.num_batches_tracked"]:get({}))
    local ok, err = pcall(ckpt.load_checkpoint, H.root .. "/spec/fixtures/ms_small.ckpt", { format = "pth" })
    assert.is_false(ok)
    assert.matches("not a PyTorch .pth", err)
    os.execute("rm -rf " .. dir)
  end)

  it("flattens the {state_dict=..., epoch=3} wrapper one level; strings, lists, None are skipped and reported", function()
    local d = ckpt.load_checkpoint(fx("wrapper.pth"))
    assert.equal(3, d.epoch:get({}))
    assert.equal("int64", d.epoch:dtype())
    assert.equal(0.125, d.lr:get({}))
    assert.is_nil(d.name)
    assert.same({ 4, 3, 3, 3 }, d["state_dict.conv.weight"]:shape())
    -- the prefix fallback loads the wrapped weights into a net with plain names
    local nn = spore.nn
    local Tiny = nn.class("PthTiny")
    function Tiny:__init()
      self:register_module("conv", nn.Conv2d(3, 4, 3, { pad_mode = "pad", padding = 1, has_bias = true }))
      self:register_module("bn", nn.BatchNorm2d(4))
      self:register_module("fc", nn.Dense(4, 2))
    end
    local net = Tiny()
    local _, rep = ckpt.load_checkpoint(fx("wrapper.pth"), { net = net, rename = ckpt.rules.torch_to_mindspore })
    assert.equal(3, #rep.unknown)
    assert.same({ "pickle:str", "pickle:list", "pickle:None" },
      { rep.unknown[1].type, rep.unknown[2].type, rep.unknown[3].type })
    assert.equal("state_dict.", rep.prefix)
    assert.same({}, rep.param_not_load)
    local p = {}
    for _, pn in ipairs(net:parameters_and_names()) do p[pn[1]] = pn[2].data end
    assert.equal(bytes_of(d["state_dict.bn.running_mean"]), bytes_of(p["bn.moving_mean"]))
    assert.equal(bytes_of(d["state_dict.bn.weight"]), bytes_of(p["bn.gamma"]))
    assert.equal(bytes_of(d["state_dict.fc.weight"]), bytes_of(p["fc.weight"]))
  end)
end)

describe("spore.ckpt.rules", function()
  local function bn_net()
    return spore.nn.SequentialCell(spore.nn.Conv2d(3, 4, 3, { pad_mode = "pad", padding = 1, has_bias = false }),
      spore.nn.BatchNorm2d(4))
  end

  it("torch names -> MindSpore names: BatchNorm only, num_batches_tracked dropped", function()
    local d = ckpt.load_checkpoint(fx("tiny_net.pth"))
    local r, dropped = ckpt.rules.apply(d, ckpt.rules.torch_to_mindspore)
    assert.same({ "conv.weight", "conv.bias", "bn.gamma", "bn.beta", "bn.moving_mean", "bn.moving_variance",
      "fc.weight", "fc.bias" }, ckpt.keys(r))
    assert.same({ "bn.num_batches_tracked" }, dropped)
    local back = ckpt.rules.apply(r, ckpt.rules.mindspore_to_torch)
    assert.same({ "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
      "fc.weight", "fc.bias" }, ckpt.keys(back))
    assert.equal(bytes_of(d["bn.running_var"]), bytes_of(back["bn.running_var"]))
    -- the dict is needed: a bare call cannot tell conv.weight from bn.weight
    assert.has_error(function() spore.ckpt.policy.rename("bn.weight", ckpt.rules.torch_to_mindspore) end)
  end)

  it("loads a torch BatchNorm2d state_dict into spore's Sequential with BatchNorm2d", function()
    local d = ckpt.load_checkpoint(fx("seq_bn.pth"))
    local net = bn_net()
    -- without the rules: only the conv weight loads, num_batches_tracked is not in the net
    local pnl, cnl = ckpt.load_param_into_net(net, d)
    assert.same({ "1.moving_mean", "1.moving_variance", "1.gamma", "1.beta" }, pnl)
    assert.is_true(#cnl == 5)
    assert.equal("1.num_batches_tracked", cnl[5])
    net = bn_net()
    local pnl2, cnl2, rep = ckpt.load_param_into_net(net, d, { rename = ckpt.rules.torch_to_mindspore })
    assert.same({}, pnl2)
    assert.same({}, cnl2)
    assert.is_not_nil(rep.renamed)
    local p = {}
    for _, pn in ipairs(net:parameters_and_names()) do p[pn[1]] = pn[2].data end
    assert.equal(bytes_of(d["1.running_var"]), bytes_of(p["1.moving_variance"]))
    assert.equal(bytes_of(d["1.weight"]), bytes_of(p["1.gamma"]))
    assert.equal(bytes_of(d["0.weight"]), bytes_of(p["0.weight"]))
    -- and back: spore's parameters renamed to torch's names give the torch file's bytes
    local saved = ckpt.rules.apply(ckpt.dict((function()
      local l = {}
      for _, pn in ipairs(net:parameters_and_names()) do l[#l + 1] = { pn[1], pn[2].data } end
      return l
    end)()), ckpt.rules.mindspore_to_torch)
    for _, k in ipairs(ckpt.keys(saved)) do assert.equal(bytes_of(d[k]), bytes_of(saved[k]), k) end
  end)

  it("scripts/convert.lua: .pth -> .ckpt with --rename torch_to_mindspore", function()
    local dir = H.tmpdir()
    local out, rc = H.run("luajit scripts/convert.lua " .. fx("seq_bn.pth") .. " " .. dir .. "/o.ckpt --rename torch_to_mindspore 2>&1")
    assert.equal(0, rc, out)
    local d = ckpt.load_checkpoint(dir .. "/o.ckpt")
    assert.same({ "0.weight", "1.gamma", "1.beta", "1.moving_mean", "1.moving_variance" }, ckpt.keys(d))
    out, rc = H.run("luajit scripts/inspect.lua " .. fx("wrapper.pth") .. " 2>&1")
    assert.equal(0, rc, out)
    assert.matches("pth, %d+ bytes, 14 entries", out)
    os.execute("rm -rf " .. dir)
  end)
end)

describe("LeNet from a torch .pth", function()
  it("spore's lenet5 with the torch weights gives torch's logits (1e-4)", function()
    local net = spore.models.lenet5 { num_class = 10, num_channel = 1 }
    local d = ckpt.load_checkpoint(fx("lenet.pth"))
    local pnl, cnl, rep = ckpt.load_param_into_net(net, d)
    assert.same({}, pnl); assert.same({}, cnl)
    assert.equal("cast", rep.entries and rep.entries[1].status or "cast")
    local io = ckpt.load_checkpoint(fx("lenet_io.pth"))
    local y = net:forward(io.input:to(net:device())):totable()
    for b = 1, 2 do
      for k = 1, 10 do
        assert.is_true(math.abs(y[b][k] - side.lenet_logits[b][k]) < 1e-4,
          string.format("logit [%d][%d]: %g vs torch %g", b, k, y[b][k], side.lenet_logits[b][k]))
        assert.is_true(math.abs(y[b][k] - io.logits:get({ b, k })) < 1e-4)
      end
    end
  end)
end)

describe(".pth hostile inputs", function()
  local function zip_with(pkl_body)
    -- a stored zip written by python's zipfile (independent of spore's reader)
    local dir = H.tmpdir()
    write_file(dir .. "/p.bin", pkl_body)
    local out, rc = H.run("/usr/bin/python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); "
      .. "z.writestr('a/data.pkl', open(sys.argv[2],'rb').read()); z.writestr('a/version','3\\n'); z.close()\" "
      .. dir .. "/e.pth " .. dir .. "/p.bin 2>&1")
    assert.equal(0, rc, out)
    return dir .. "/e.pth", dir
  end

  it("a forbidden GLOBAL (os.system) is named and never executed", function()
    local marker = os.tmpname(); os.remove(marker)
    local cmd = "touch " .. marker
    local pkl = "\128\2cos\nsystem\nX" .. string.char(#cmd, 0, 0, 0) .. cmd .. "\133R."
    local p, dir = zip_with(pkl)
    local ok, err = pcall(ckpt.load_checkpoint, p)
    assert.is_false(ok)
    assert.matches("forbidden global 'os.system' at offset 2", err, 1, true)
    assert.is_nil(io.open(marker, "rb"))
    os.execute("rm -rf " .. dir)
  end)

  it("a deflated entry is refused with a clear message", function()
    local dir = H.tmpdir()
    local out, rc = H.run("/usr/bin/python3 -c \"import zipfile; z=zipfile.ZipFile('" .. dir .. "/c.pth','w',"
      .. "zipfile.ZIP_DEFLATED); z.writestr('a/data.pkl', b'\\x80\\x02}.'); z.close()\" 2>&1")
    assert.equal(0, rc, out)
    local ok, err = pcall(ckpt.load_checkpoint, dir .. "/c.pth")
    assert.is_false(ok)
    assert.matches("entry a/data.pkl is compressed (method 8); spore reads torch.save's stored zips", err, 1, true)
    os.execute("rm -rf " .. dir)
  end)

  it("every truncation of a fixture is a one-line error naming the file", function()
    local b = read_file(fx("tiny_net.pth"))
    local dir = H.tmpdir()
    local p = dir .. "/t.pth"
    for cut = 1, #b - 1, 7 do
      write_file(p, b:sub(1, cut))
      local ok, err = pcall(ckpt.load_checkpoint, p, { format = "pth" })
      assert.is_false(ok, "cut " .. cut)
      assert.matches("file '" .. p:gsub("%p", "%%%0") .. "'", err)
      assert.is_nil(err:find("\n"))
    end
    os.execute("rm -rf " .. dir)
  end)
end)
