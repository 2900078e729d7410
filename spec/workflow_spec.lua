-- workflow_spec.lua — the user's day through the scripts, as separate processes:
-- evaluate the real MindSpore checkpoint, resume it with its optimizer state,
-- transfer it to Fashion-MNIST with a new head, and bad input handled cleanly.
local spore = require("spore")
local ckpt = require("spore.ckpt")
local H = spec_helper

local LENET = "mindspore/checkpoint_lenet-1_1875.ckpt"
local FASHION = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

local function last_json(out)
  local line
  for l in out:gmatch("[^\n]+") do if l:sub(1, 1) == "{" then line = l end end
  return line
end
local function num(line, key) return tonumber(line:match('"' .. key .. '":(%-?[%d%.e%-]+)')) end
local function str(line, key) return line:match('"' .. key .. '":"([^"]*)"') end
local function exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end

describe("scripts/eval.lua", function()
  it("reports the real MindSpore LeNet checkpoint at 0.9638 +- 0.002 on the 10,000 t10k images", function()
    local ck, miss = H.fixture(LENET)
    local mn = H.fixture("mnist/t10k-images-idx3-ubyte.gz")
    if not ck or not mn then return pending(miss or "fixture missing: mnist t10k") end
    local out, rc = H.run(("luajit scripts/eval.lua --net lenet5 --ckpt %s --dataset mnist --data %s 2>/dev/null")
      :format(ck, mn:match("^(.*)/")))
    assert.equal(0, rc, out)
    local line = last_json(out)
    assert.is_true(math.abs(num(line, "accuracy") - 0.9638) <= 0.002, line)
    assert.equal(10000, num(line, "samples"))
    assert.matches('"param_not_load":%[%]', line)
    assert.is_true(num(line, "loss") < 0.2)
  end)
end)

describe("scripts/finetune.lua", function()
  it("resumes the MindSpore checkpoint with its optimizer state: low loss from the start, >= 0.972 after an epoch", function()
    local ck, miss = H.fixture(LENET)
    local mn = H.fixture("mnist/train-images-idx3-ubyte.gz")
    if not ck or not mn then return pending(miss or "fixture missing: mnist train") end
    local dir = H.tmpdir()
    local out, rc = H.run(("luajit scripts/finetune.lua --net lenet5 --ckpt %s --dataset mnist --data %s "
      .. "--load-optimizer --epochs 1 --out %s --quiet 2>/dev/null"):format(ck, mn:match("^(.*)/"), dir))
    assert.equal(0, rc, out)
    local line = last_json(out)
    assert.is_true(num(line, "first_100_steps_loss") < 0.3, line) -- a fresh LeNet is above 1.0
    assert.is_true(num(line, "accuracy") >= 0.972, line)
    assert.equal(312, num(line, "global_step")) -- 10,000 images / 32, remainder dropped
    -- the saved checkpoint holds the whole training state
    local path = str(line, "checkpoint")
    local d = spore.load_checkpoint(path)
    for _, k in ipairs({ "conv1.weight", "fc3.bias", "moments.conv1.weight", "moments.fc3.bias", "learning_rate",
      "momentum", "global_step", "epoch_num", "step_num" }) do
      assert.is_truthy(d[k], "missing " .. k)
    end
    assert.equal(312, d.global_step[1])
    assert.equal(1, d.epoch_num:item())
    assert.near(0.9, d.momentum:item(), 1e-7)
    -- it reloads bit-exactly: evaluating it in a fresh process gives the accuracy training ended with
    local e = H.run(("luajit scripts/eval.lua --ckpt %s --dataset mnist --data %s 2>/dev/null"):format(path,
      mn:match("^(.*)/")))
    assert.equal(num(line, "accuracy"), num(last_json(e), "accuracy"))
    -- and a save / load round trip keeps every byte
    local copy = dir .. "/copy.ckpt"
    spore.save_checkpoint(d, copy)
    local d2 = spore.load_checkpoint(copy)
    for _, k in ipairs(ckpt.keys(d)) do
      if spore.is_tensor(d[k]) then
        assert.equal(d[k]:dtype(), d2[k]:dtype())
        assert.same(d[k]:flat(), d2[k]:flat())
      end
    end
    H.run("rm -rf " .. dir)
  end)

  it("transfers to Fashion-MNIST with a new head and conv1 frozen: >= 0.82 after one epoch, conv1 unchanged", function()
    local ck, miss = H.fixture(LENET)
    if not ck then return pending(miss) end
    if not exists(FASHION) then return pending("Fashion-MNIST missing: " .. FASHION .. " (apt install dataset-fashion-mnist)") end
    local dir = H.tmpdir()
    local out, rc = H.run(("luajit scripts/finetune.lua --net lenet5 --ckpt %s --dataset fashion-mnist "
      .. "--new-head 10 --freeze conv1 --epochs 1 --out %s --quiet 2>/dev/null"):format(ck, dir))
    assert.equal(0, rc, out)
    local line = last_json(out)
    assert.is_true(num(line, "accuracy") >= 0.82, line)
    assert.matches('"head_not_loaded":%["fc3.weight","fc3.bias","moments.fc3.weight","moments.fc3.bias"%]', line)
    local before, after = spore.load_checkpoint(ck), spore.load_checkpoint(str(line, "checkpoint"))
    local a, b = before["conv1.weight"], after["conv1.weight"]
    assert.same(a:shape(), b:shape())
    local pa, pb = a:ptr(), b:ptr()
    for i = 0, a:numel() - 1 do assert.equal(pa[i], pb[i]) end
    -- the trained layers did move
    assert.are_not.same(before["conv2.weight"]:flat(), after["conv2.weight"]:flat())
    H.run("rm -rf " .. dir)
  end)
end)

describe("scripts reject bad input with one clear line", function()
  local function check(cmd, want_rc, pattern)
    local dir = H.tmpdir()
    local out, rc = H.run(cmd:gsub("OUT", dir .. "/out") .. " 2>&1 >/dev/null")
    assert.equal(want_rc, rc, out)
    assert.matches(pattern, out)
    assert.is_nil(out:find("stack traceback", 1, true), out)
    assert.is_false(exists(dir .. "/out"), "something was written for: " .. cmd)
    H.run("rm -rf " .. dir)
    return out
  end
  it("missing dataset files", function()
    local out = check("luajit scripts/train.lua --dataset mnist --data /nonexistent/mnist --out OUT", 1,
      "/nonexistent/mnist")
    assert.equal(1, select(2, out:gsub("\n", "")))
  end)
  it("a checkpoint of another network", function()
    local ms = H.local_fixture("ms_small.ckpt")
    if not exists(FASHION) then return pending("Fashion-MNIST missing") end
    check("luajit scripts/finetune.lua --ckpt " .. ms .. " --out OUT", 1, "holds none of the lenet5 parameters")
    check("luajit scripts/eval.lua --dataset fashion-mnist --ckpt " .. ms, 1, "another network")
  end)
  it("a missing checkpoint file names it", function()
    if not exists(FASHION) then return pending("Fashion-MNIST missing") end
    check("luajit scripts/eval.lua --dataset fashion-mnist --ckpt /nonexistent/x.ckpt", 1, "/nonexistent/x.ckpt")
  end)
  it("a wrong --net, a non-numeric --lr, an unknown option: usage and exit code 2", function()
    check("luajit scripts/finetune.lua --net vgg99 --out OUT", 2, "unknown %-%-net 'vgg99'")
    check("luajit scripts/train.lua --lr fast --out OUT", 2, "%-%-lr expects a number, got 'fast'")
    check("luajit scripts/eval.lua --bogus", 2, "unknown option '%-%-bogus'")
    check("luajit scripts/eval.lua", 2, "%-%-ckpt FILE is required")
  end)
  it("--help prints usage and exits 0", function()
    for _, s in ipairs({ "eval", "train", "finetune", "inspect", "convert" }) do
      local out, rc = H.run("luajit scripts/" .. s .. ".lua --help")
      assert.equal(0, rc, s)
      assert.matches("usage", out:lower())
    end
  end)
end)

describe("fine-tuning helpers", function()
  it("--head-lr trains the head in its own parameter group, saved as learning_rate_group_<i>", function()
    if not exists(FASHION) then return pending("Fashion-MNIST missing: " .. FASHION) end
    local dir = H.tmpdir()
    -- a checkpoint to start from: 20 steps of training
    local out, rc = H.run(("luajit scripts/train.lua --steps 20 --out %s/a --quiet 2>/dev/null"):format(dir))
    assert.equal(0, rc, out)
    local src = str(last_json(out), "checkpoint")
    out, rc = H.run(("luajit scripts/finetune.lua --ckpt %s --new-head 10 --freeze conv1 --lr 0.005 --head-lr 0.05 "
      .. "--steps 20 --out %s/b --quiet 2>/dev/null"):format(src, dir))
    assert.equal(0, rc, out)
    local d = spore.load_checkpoint(str(last_json(out), "checkpoint"))
    assert.near(0.005, d.learning_rate_group_0:item(), 1e-9)
    assert.near(0.05, d.learning_rate_group_1:item(), 1e-9)
    assert.is_nil(d.learning_rate)
    assert.is_nil(d["moments.conv1.weight"]) -- frozen: no optimizer state
    assert.is_truthy(d["conv1.weight"])        -- but the weight is saved
    H.run("rm -rf " .. dir)
  end)
  it("models accept MindSpore's and torchvision's spellings of the class count", function()
    assert.same({ 7, 2048 }, spore.models.resnet50{ num_classes = 7 }.end_point.weight.data:shape())
    assert.same({ 3, 84 }, spore.models.lenet5{ num_classes = 3 }.fc3.weight.data:shape())
    assert.has_error(function() spore.models.resnet18{ class_num = 0 } end)
  end)
end)
