-- compare.lua A.ckpt B.ckpt [names-pattern] — the largest relative difference between the
-- float entries two checkpoints share (max|a-b| / max|a|, per tensor), and whether they are
-- bit-identical. Used by the spore.dist checks (README "Several machines").
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local spore = require("spore")
local ck = require("spore.ckpt")
local a, b, pat = arg[1], arg[2], arg[3]
local function load(p)
  if require("spore.ckpt.merge").is_index(p) then return (require("spore.ckpt.merge").load(p)) end
  return spore.load_checkpoint(p)
end
local A, Bd = load(a), load(b)
local worst, wname, n, same = 0, nil, 0, true
for _, k in ipairs(ck.keys(A)) do
  local x, y = A[k], Bd[k]
  if (not pat or k:match(pat)) and spore.is_tensor(x) and spore.is_tensor(y) and x:dtype():match("float") then
    n = n + 1
    local function num(v) return type(v) == "number" and v or v:item() end
    local d = num((x - y):abs():max())
    local m = num(x:abs():max())
    if d ~= 0 then same = false end
    local r = d / math.max(m, 1e-30)
    if r > worst then worst, wname = r, k end
  elseif (not pat or k:match(pat)) and y == nil then
    same = false
    print("only in " .. a .. ": " .. k)
  end
end
print(("%d tensors compared; max relative difference %.3g%s; bit-identical: %s"):format(n, worst,
  wname and (" (" .. wname .. ")") or "", tostring(same)))
