--- scripts/bench/allocs_per_step.lua — engine allocations (spore.mem_stats().allocs delta)
-- per steady-state training step (after warm-up steps: 3, and 300 for LeNet5, whose small
-- convolutions try one thread and libgomp's pool over their first windows of calls, so the
-- pool's workers make their scratch there), LeNet5 batch 32 and ResNet18 batch 8 (64x64),
-- Momentum, float32 and amp_level O2; the ResNet50 frozen-body transfer step too.
-- Usage: luajit scripts/bench/allocs_per_step.lua
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local function measure(name, net, x, y, level, steps, warm)
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local m = spore.Model(net, loss, spore.optim.Momentum(net:trainable_params(), 0.01, 0.9), { amp_level = level })
  for _ = 1, warm or 3 do m:_train_step(x, y, {}) end
  collectgarbage(); collectgarbage() -- the earlier cases' garbage (allocs counts live blocks)
  local a0 = spore.mem_stats().allocs
  for _ = 1, steps do m:_train_step(x, y, {}) end
  io.write(("%-34s %s  allocs/step %.2f\n"):format(name, level, (spore.mem_stats().allocs - a0) / steps))
end
for _, level in ipairs({ "O0", "O2" }) do
  spore.manual_seed(1)
  measure("lenet5 train b32", spore.models.lenet5(), spore.randn({ 32, 1, 32, 32 }), spore.zeros({ 32 }, "int32"), level, 100, 300)
  measure("resnet18 train b8 64x64", spore.models.resnet18 { class_num = 10 }, spore.randn({ 8, 3, 64, 64 }),
    spore.zeros({ 8 }, "int32"), level, 3)
  local net = spore.models.resnet50 { class_num = 1001 }
  net.end_point = spore.nn.Dense(2048, 10)
  net:freeze(); net:unfreeze("end_point")
  measure("resnet50 frozen body b2 224", net, spore.randn({ 2, 3, 224, 224 }), spore.zeros({ 2 }, "int32"), level, 2)
end
