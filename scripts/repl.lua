-- luajit scripts/repl.lua — the spore REPL (see lua/spore/repl.lua).
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
require("spore.repl").run({ spore = require("spore") })
