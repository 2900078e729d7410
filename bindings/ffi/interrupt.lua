--- bindings/ffi/interrupt.lua — Ctrl-C as a flag (engine/core/sigint.c), for the REPL.
--   I.catch(true)   SIGINT only sets a flag from now on (the process no longer dies of it)
--   I.catch(false)  the previous SIGINT disposition again
--   I.take()        true when Ctrl-C was pressed since the last take (and clears it)
-- No Lua runs in signal context: the engine's handler stores one sig_atomic_t; the REPL
-- polls take() from a count hook and between reads.
local L = require("ffi.lib")
local C = L.C

local M = {}

function M.catch(on)
  if C.sp_sigint_catch(on and 1 or 0) ~= 0 then
    error("interrupt: sigaction(SIGINT) failed", 2)
  end
end

function M.take() return C.sp_sigint_take() ~= 0 end

return M
