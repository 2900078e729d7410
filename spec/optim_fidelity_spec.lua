-- optim_fidelity_spec.lua — spore's optimizers against MindSpore 2.10's own numbers
-- (spec/fixtures/ms_optim_fidelity.json, written by scripts/gen/gen_ms_fidelity_optim.py):
-- AdamWeightDecay, Adam with use_amsgrad, dynamic weight decay, parameter groups (lr,
-- weight_decay, grad_centralization, order_params) and the state names, order and values
-- MindSpore saves — within 1e-6 relative (exact for integers), and the saved state
-- loads back into a fresh optimizer that then continues as MindSpore did.
require("spec.helper")
local spore = require("spore")
local nn, optim, ckpt = spore.nn, spore.optim, require("spore.ckpt")
local json = require("dkjson")

local REL = 1e-6
local path = assert(spec_helper.local_fixture("ms_optim_fidelity.json"))
local fh = assert(io.open(path, "rb"))
local G = json.decode(fh:read("*a"))
fh:close()

local NAMES = { "fc.weight", "fc.bias", "bn.gamma", "conv.weight" }

local function tensor_of(e)
  local t = spore.tensor(e.values, "float32")
  return t:reshape(e.shape)
end

local function make_params(with_c)
  local ps = {}
  for i = 1, with_c and 4 or 3 do
    ps[i] = nn.Parameter(tensor_of(G.inputs[NAMES[i]]), NAMES[i], true)
  end
  return ps
end

local function set_grads(ps, step)
  for i, p in ipairs(ps) do p.grad = tensor_of(G.inputs.grads[step][i]) end
end

-- max relative error (|a-b| / max(|b|, 1e-30)); values with |b| < 1e-6 compared absolutely
local worst = {}
local function compare(what, t, e, case)
  local f = t:flat()
  assert.equal(#e.values, #f, what .. ": element count")
  local m = 0
  for i, ref in ipairs(e.values) do
    local err = math.abs(f[i] - ref)
    local rel = math.abs(ref) > 1e-6 and err / math.abs(ref) or err
    if rel > m then m = rel end
    assert(rel <= REL, ("%s[%d]: spore %.9g, MindSpore %.9g (relative error %.3g)"):format(what, i, f[i], ref, rel))
  end
  worst[case] = math.max(worst[case] or 0, m)
end

local function run_case(case, make, with_c)
  local g = G.cases[case]
  assert(g and not g.error, "golden case " .. case .. " missing")
  local ps = make_params(with_c)
  local opt = make(ps)
  for s = 1, 3 do
    set_grads(ps, s)
    opt:step()
    for _, p in ipairs(ps) do compare(("%s step %d %s"):format(case, s, p.name), p.data, g.steps[s][p.name], case) end
  end
  -- the state as MindSpore saves it: same names, same order, same values
  local names = {}
  for i, kv in ipairs(opt:parameters_and_names()) do names[i] = kv[1] end
  local want = {}
  for i, e in ipairs(g.ckpt) do want[i] = e.name end
  assert.same(want, names)
  local by = {}
  for _, kv in ipairs(opt:parameters_and_names()) do by[kv[1]] = kv[2] end
  for _, e in ipairs(g.ckpt) do
    if e.dtype:match("int") then
      assert.same(e.values, by[e.name].data:flat(), case .. " " .. e.name)
    else
      compare(case .. " state " .. e.name, by[e.name].data, e, case)
    end
  end
  return opt, ps
end

local function wd_step(step) return 0.01 * (1 + step) end

describe("optimizers against MindSpore 2.10 (ms_optim_fidelity.json)", function()
  it("AdamWeightDecay: 3 steps, decay in the update (not on gamma), adam_m/adam_v", function()
    run_case("adamw", function(ps) return optim.AdamWeightDecay(ps, 0.01, { beta1 = 0.9, beta2 = 0.999, eps = 1e-6,
      weight_decay = 0.1 }) end)
  end)
  it("AdamWeightDecay with MindSpore's defaults (lr 1e-3, eps 1e-6, no decay)", function()
    run_case("adamw_defaults", function(ps) return optim.AdamWeightDecay(ps) end)
  end)
  it("AdamWeightDecay groups: own lr and weight_decay; learning_rate_group_0 then learning_rate", function()
    run_case("adamw_groups", function(ps)
      return optim.AdamWeightDecay({ { params = { ps[1] }, weight_decay = 0.05, lr = 0.02 }, { params = { ps[2], ps[3] } } },
        0.01, { weight_decay = 0 })
    end)
  end)
  it("Adam use_amsgrad: vhat, weight decay", function()
    run_case("adam_amsgrad", function(ps) return optim.Adam(ps, 0.01, { weight_decay = 0.01, use_amsgrad = true }) end)
  end)
  it("dynamic weight decay (a function of global_step) in Momentum and AdamWeightDecay", function()
    run_case("momentum_dynamic_wd", function(ps) return optim.Momentum(ps, 0.1, 0.9, { weight_decay = wd_step }) end)
    run_case("adamw_dynamic_wd", function(ps) return optim.AdamWeightDecay(ps, 0.01, { weight_decay = wd_step }) end)
  end)
  it("Momentum groups: one lr of its own (learning_rate_group_0) and the default (learning_rate)", function()
    run_case("momentum_groups_lr", function(ps)
      return optim.Momentum({ { params = { ps[1] }, lr = 0.05, weight_decay = 0.01 }, { params = { ps[2], ps[3] } } }, 0.1, 0.9)
    end)
  end)
  it("Momentum groups: every group with its lr; parameters in group order", function()
    run_case("momentum_groups_all_lr", function(ps)
      return optim.Momentum({ { params = { ps[1], ps[3] }, lr = 0.05 }, { params = { ps[2] }, lr = 0.02 } }, 0.1, 0.9)
    end)
  end)
  it("Momentum groups with lr arrays: the learning rates saved last", function()
    run_case("momentum_groups_lr_array", function(ps)
      return optim.Momentum({ { params = { ps[1] }, lr = { 0.05, 0.04, 0.03, 0.02 } }, { params = { ps[2], ps[3] } } },
        { 0.1, 0.09, 0.08, 0.07 }, 0.9)
    end)
  end)
  it("order_params reorders the parameters and their state", function()
    run_case("momentum_order_params", function(ps)
      return optim.Momentum({ { params = { ps[2] }, lr = 0.05 }, { params = { ps[1], ps[3] }, weight_decay = 0.02 },
        { order_params = ps } }, 0.1, 0.9)
    end)
  end)
  it("Adam groups: learning_rate_group_0, learning_rate, beta powers, moments", function()
    run_case("adam_groups_lr", function(ps)
      return optim.Adam({ { params = { ps[1] }, lr = 0.02 }, { params = { ps[2], ps[3] }, weight_decay = 0.01 } }, 0.01)
    end)
  end)
  it("grad_centralization (MindSpore's formula; its CPU build has no Centralization kernel)", function()
    run_case("momentum_grad_centralization", function(ps)
      return optim.Momentum({ { params = { ps[1], ps[4] }, grad_centralization = true, weight_decay = 0.01 },
        { params = { ps[2], ps[3] } } },
        0.1, 0.9)
    end, true)
  end)

  it("a checkpoint of grouped learning rates round-trips: MindSpore's names load in place and the run continues", function()
    local g = G.cases.momentum_groups_lr
    local ps = make_params()
    local opt = optim.Momentum({ { params = { ps[1] }, lr = 0.05, weight_decay = 0.01 }, { params = { ps[2], ps[3] } } },
      0.7, 0.9) -- another default lr: the checkpoint's learning_rate must replace it
    local list = {}
    for _, e in ipairs(g.ckpt) do
      local t = spore.tensor(e.values, e.dtype == "int32" and "int32" or "float32"):reshape(e.shape)
      list[#list + 1] = { e.name, t }
    end
    local d = ckpt.dict(list)
    local not_loaded, ckpt_not_loaded = ckpt.load_param_into_net(opt, d)
    assert.same({}, not_loaded); assert.same({}, ckpt_not_loaded)
    assert.equal(3, opt:global_step())
    assert.is_true(math.abs(opt:get_lr(2) - 0.1) < 1e-7)
    -- and spore writes the same names back
    local tmp = os.tmpname()
    ckpt.save_checkpoint(opt, tmp .. ".ckpt")
    local back = ckpt.load_checkpoint(tmp .. ".ckpt")
    os.remove(tmp .. ".ckpt"); os.remove(tmp)
    local want = {}
    for i, e in ipairs(g.ckpt) do want[i] = e.name end
    assert.same(want, ckpt.keys(back))
  end)

  it("reports the worst relative error per case", function()
    local ks = {}
    for k in pairs(worst) do ks[#ks + 1] = k end
    table.sort(ks)
    for _, k in ipairs(ks) do io.stderr:write(("  %-30s max rel err %.3g\n"):format(k, worst[k])) end
    assert.is_true(#ks >= 10)
  end)
end)
