-- cuda_errors_spec.lua — asking for CUDA where it cannot run (no GPU, or an engine built
-- without `make CUDA=1`) is one clear line, never a crash: the tensor API, the default
-- device, and the scripts' --device flag. (The GPU itself is checked by spec/cuda_spec.lua,
-- tag "cuda", and scripts/gpu_check.sh.)
local spore = require("spore")
local H = spec_helper

describe("CUDA where there is none", function()
  local n = spore.device_count()

  it("spore.device_count() is a count", function()
    assert.are.equal("number", type(n))
    assert.is_true(n >= 0 and n == math.floor(n))
  end)

  if n > 0 then
    it("(this machine has a GPU: the refusals below do not apply)", function() pending("GPU present") end)
    return
  end

  local reason = "no CUDA GPU is visible to this process"

  for _, name in ipairs({ "cuda", "cuda:1" }) do
    it("t:to('" .. name .. "') fails in one line naming the device and why", function()
      local ok, err = pcall(function() return spore.tensor({ 1, 2 }):to(name) end)
      assert.is_false(ok)
      err = tostring(err)
      assert.truthy(err:find("cuda:" .. (name == "cuda" and 0 or 1) .. " is not available", 1, true), err)
      assert.truthy(err:find(reason, 1, true) or err:find("built without CUDA", 1, true), err)
      assert.is_nil(err:find("\n", 1, true))
    end)
  end

  it("set_default_device('cuda') and net:to('cuda') refuse the same way", function()
    local ok, err = pcall(spore.set_default_device, "cuda")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("is not available", 1, true))
    assert.are.equal("string", type(spore.get_default_device()))
    local net = spore.models.lenet5()
    ok, err = pcall(function() return net:to("cuda") end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("is not available", 1, true))
    assert.are.equal(spore.get_default_device(), net:trainable_params()[1].data:device())
  end)

  it("eval.lua --device cuda: exit 1, one line on stderr", function()
    local out, rc = H.run("SPORE_LIB=" .. (os.getenv("SPORE_LIB") or "") ..
      " luajit scripts/eval.lua --device cuda --ckpt /nonexistent.ckpt 2>&1")
    assert.are.equal(1, rc)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(1, #lines, out)
    assert.truthy(lines[1]:find("^eval%.lua: device 'cuda': device cuda:0 is not available"), lines[1])
  end)

  it("--device sim is accepted by train.lua's parser (the flag is common)", function()
    local out, rc = H.run("luajit scripts/train.lua --help 2>&1")
    assert.are.equal(0, rc)
    assert.truthy(out:find("--device", 1, true))
  end)
end)
