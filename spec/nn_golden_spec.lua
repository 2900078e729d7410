-- nn_golden_spec.lua — kernels and a 3-step LeNet/Momentum run against the committed
-- PyTorch (float64) / MindSpore goldens in spec/fixtures (written by
-- scripts/gen/gen_fixtures.py): torch_kernels.{json,bin} and lenet_oracle.{json,bin}.
-- spore computes in float32, so values agree to float32 rounding (tolerances below).
local spore = require("spore")
local ffi = require("ffi")
local json = require("spore.json")
local nn, optim = spore.nn, spore.optim
local H = spec_helper

local function load(name)
  local jp, e1 = H.local_fixture(name .. ".json")
  if not jp then return nil, e1 end
  local fh = io.open(jp, "rb"); local meta = json.decode(fh:read("*a")); fh:close()
  local bp, e2 = H.local_fixture(meta.blob)
  if not bp then return nil, e2 end
  fh = io.open(bp, "rb"); local blob = fh:read("*a"); fh:close()
  local arrays = meta.arrays
  local function get(key)
    local a = arrays[key]
    assert(a, "golden array missing: " .. key)
    local ct = ({ f64 = "double", f32 = "float", i32 = "int32_t" })[a.dtype]
    local n = a.nbytes / ffi.sizeof(ct)
    local p = ffi.cast(ct .. "*", ffi.cast("const char*", blob) + a.offset)
    local t = spore.empty(a.shape, a.dtype == "i32" and "int32" or "float32")
    local q = t:ptr()
    for i = 0, n - 1 do q[i] = p[i] end
    return t, a.shape
  end
  return { meta = meta, get = get, blob = blob }
end

local function close(t, ref, tol, what)
  local a, b = t:flat(), ref:flat()
  assert.equal(#b, #a, what .. ": element count")
  local m = 0
  for i = 1, #a do m = math.max(m, math.abs(a[i] - b[i]) / math.max(1, math.abs(b[i]))) end
  assert(m <= tol, ("%s: max relative diff %.3g > %.3g"):format(what, m, tol))
end

local TOL = 2e-5 -- float32 vs float64 goldens on O(1)-sized sums of ≤ 150 terms

describe("PyTorch/MindSpore golden kernels", function()
  local G, err = load("torch_kernels")
  if not G then pending("SKIPPED (fixture missing): " .. err); return end

  for name, case in pairs(G.meta.cases) do
    it(name .. " (" .. case.op .. ")", function()
      local A = {}
      -- on the default device, where the modules are (SPORE_DEVICE=sim: inputs and gradients too)
      local dev = spore.get_default_device()
      for k, key in pairs(case.arrays) do A[k] = G.get(key):to(dev) end
      local c = case.config
      if case.op == "conv2d" then
        local o = { stride = c.stride, dilation = c.dil, group = c.groups, has_bias = c.bias }
        if c.pad == "same" then o.pad_mode = "same"
        elseif c.pad == 0 then o.pad_mode = "valid"
        else o.pad_mode, o.padding = "pad", c.pad end
        local m = nn.Conv2d(c.Cin, c.Cout, c.k, o)
        m.weight.data:copy_(A.w)
        if c.bias then m.bias.data:copy_(A.b) end
        if c.pads_top_bottom_left_right then
          local s = A.x:shape()
          assert.same(c.pads_top_bottom_left_right, m:pads(s[3], s[4]))
        end
        close(m(A.x), A.y, TOL, "y")
        m:zero_grad()
        close(m:backward(A.x, A.dy), A.dx, TOL, "dx")
        close(m.weight.grad, A.dw, TOL, "dw")
        if c.bias then close(m.bias.grad, A.db, TOL, "db") end
      elseif case.op == "maxpool2d" or case.op == "avgpool2d" then
        local cls = case.op == "maxpool2d" and nn.MaxPool2d or nn.AvgPool2d
        local m = cls(c.kernel, c.stride, c.pad_mode)
        close(m(A.x), A.y, TOL, "y")
        close(m:backward(A.x, A.dy), A.dx, TOL, "dx")
      elseif case.op == "batchnorm2d_train" then
        local C = A.gamma:numel()
        local m = nn.BatchNorm2d(C, { eps = c.eps, momentum = c.momentum })
        m.gamma.data:copy_(A.gamma); m.beta.data:copy_(A.beta)
        m.moving_mean.data:copy_(A.moving_mean); m.moving_variance.data:copy_(A.moving_variance)
        close(m(A.x), A.y, TOL, "y")
        close(m.moving_mean.data, A.new_moving_mean, TOL, "new moving_mean")
        close(m.moving_variance.data, A.new_moving_variance, TOL, "new moving_variance (unbiased)")
        m:zero_grad()
        close(m:backward(A.x, A.dy), A.dx, 1e-4, "dx")
        close(m.gamma.grad, A.dgamma, TOL, "dgamma")
        close(m.beta.grad, A.dbeta, TOL, "dbeta")
      elseif case.op == "softmax_cross_entropy_sparse_mean" then
        local l = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
        local v = l:forward(A.logits, A.labels)
        assert.is_true(math.abs(v - A.loss:flat()[1]) < 1e-5)
        close(l:backward(), A.dlogits, TOL, "dlogits")
      elseif case.op == "dense" then
        local s = A.w:shape()
        local m = nn.Dense(s[2], s[1])
        m.weight.data:copy_(A.w); m.bias.data:copy_(A.b)
        close(m(A.x), A.y, TOL, "y")
        m:zero_grad()
        close(m:backward(A.x, A.dy), A.dx, TOL, "dx")
        close(m.weight.grad, A.dw, TOL, "dw")
        close(m.bias.grad, A.db, TOL, "db")
      elseif case.op == "relu" then
        local m = nn.ReLU()
        close(m(A.x), A.y, TOL, "y")
        close(m:backward(A.x, A.dy), A.dx, TOL, "dx")
      else
        error("golden op not covered: " .. case.op)
      end
    end)
  end
end)

describe("LeNet5 + Momentum, 3 steps, against the PyTorch/MindSpore oracle", function()
  local G, err = load("lenet_oracle")
  if not G then pending("SKIPPED (fixture missing): " .. err); return end
  it("gives the oracle's losses and final weights", function()
    local net = spore.models.lenet5()
    for _, e in ipairs(net:parameters_and_names()) do e[2].data:copy_(G.get("init." .. e[1])) end
    local x, y = G.get("x"):to(net:device()), G.get("labels"):to(net:device())
    local loss = nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
    local opt = optim.Momentum(net:trainable_params(), G.meta.optimizer.lr, G.meta.optimizer.momentum)
    for s = 1, G.meta.optimizer.steps do
      net:zero_grad()
      local l = loss:forward(net(x), y)
      assert(math.abs(l - tonumber(G.meta.losses_f64[s])) < 1e-5,
        ("loss before step %d: %.9g vs %s"):format(s, l, G.meta.losses_f64[s]))
      net:backward(x, loss:backward())
      opt:step()
    end
    for _, e in ipairs(net:parameters_and_names()) do
      close(e[2].data, G.get("final_f64." .. e[1]), 1e-5, e[1])
    end
  end)
end)
