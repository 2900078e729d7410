--- spore.nn.chain — the one sequential runner: run an ordered list of modules forward
-- (remembering each module's input) and backward in reverse. SequentialCell runs its
-- children with it; models whose registered children (which define parameter names)
-- differ from the execution order, e.g. LeNet5 reusing ReLU/MaxPool, run their own list.
local M = {}
--- forward through list; remembers each module's input in ins.
function M.forward(list, ins, x)
  for i = 1, #list do ins[i] = x; x = list[i]:forward(x) end
  return x
end
--- backward through list in reverse; the first module skips its input gradient
-- unless need_input_grad. M.on_backward (nil unless spore.dist is reducing gradients) is
-- called with each module once its backward has returned: its parameters' gradients are final.
function M.backward(list, ins, g, need_input_grad)
  for i = #list, 1, -1 do
    g = list[i]:backward(ins[i], g, i > 1 or need_input_grad ~= false)
    local hook = M.on_backward
    if hook then hook(list[i]) end
  end
  return g
end
return M
