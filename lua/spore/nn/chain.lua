--- spore.nn.chain — the one sequential runner: run an ordered list of modules forward
-- (remembering each module's input) and backward in reverse. SequentialCell runs its
-- children with it; models whose registered children (which define parameter names)
-- differ from the execution order, e.g. LeNet5 reusing ReLU/MaxPool, run their own list.
-- Backward stops where nothing upstream needs a gradient: below the first (in execution
-- order) module holding a trainable parameter, no module runs backward at all, and that
-- module computes no input gradient (unless the caller asked for one).
local M = {}
--- forward through list; remembers each module's input in ins.
function M.forward(list, ins, x)
  for i = 1, #list do ins[i] = x; x = list[i]:forward(x) end
  return x
end

--- true when module m (or a descendant) has a Parameter with requires_grad. Walks the
-- module tree without building tables (called on every backward).
local function trainable(m)
  for _, e in ipairs(m._params) do if e[2].requires_grad then return true end end
  for _, e in ipairs(m._modules) do if trainable(e[2]) then return true end end
  return false
end
M.trainable = trainable

--- backward through list in reverse. need_input_grad == false: the caller needs no
-- gradient for the list's input, so the backward stops at the first module with a
-- trainable parameter (returns nil then); otherwise every module runs and the input
-- gradient is returned. M.on_backward (nil unless spore.dist is reducing gradients) is
-- called with each module once its backward has returned: its parameters' gradients are final.
function M.backward(list, ins, g, need_input_grad)
  local first = 1
  if need_input_grad == false then
    first = nil
    for i = 1, #list do
      local m = list[i]
      if not m._params or trainable(m) then first = i; break end
    end
    if not first then return nil end
  end
  for i = #list, first, -1 do
    g = list[i]:backward(ins[i], g, i > first or need_input_grad ~= false)
    local hook = M.on_backward
    if hook then hook(list[i]) end
  end
  if need_input_grad == false then return nil end
  return g
end
return M
