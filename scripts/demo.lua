-- demo.lua — `make demo`. Until the training workflow lands this is the REPL
-- smoke demo: build tensors, multiply, print.
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local spore = require("spore")
spore.manual_seed(0)
local a = spore.randn{2, 3}
print("a =", a)
print("a·aᵀ =", a:matmul(a:t()))
print("engine memory:", spore.mem_stats().live, "bytes live")
