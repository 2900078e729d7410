-- util.lua — helpers for the bench scripts: clock, median, PyTorch peer, JSON line.
local ffi = require("ffi")
pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } sp_bench_timespec;
  int clock_gettime(int clk, sp_bench_timespec *ts);
]])
local U = {}
local ts = ffi.new("sp_bench_timespec")
function U.now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
function U.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end
--- Run python code under /usr/bin/python3 with PyTorch's best CPU settings;
-- returns the number it prints last, or nil when torch is unavailable.
function U.python(code)
  local f = os.tmpname()
  local h = io.open(f, "w")
  h:write(code)
  h:close()
  local p = io.popen("OPENBLAS_NUM_THREADS=1 /usr/bin/python3 " .. f .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  os.remove(f)
  local last
  for line in out:gmatch("[^\n]+") do last = line end
  return last and tonumber(last) or nil
end
local function enc(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = string.format("%q: %s", k, enc(x)) end
    table.sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
  elseif type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return string.format("%.6g", v)
  elseif type(v) == "boolean" then return tostring(v)
  elseif v == nil then return "null" end
  return string.format("%q", tostring(v))
end
--- Print one result as a JSON line (nil peers print as null).
function U.emit(t)
  local keys = { "name", "unit", "spore", "peers", "ratio_vs_torch", "runs" }
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q: %s", k, enc(t[k])) end
  for k, v in pairs(t) do
    local known = false
    for _, kk in ipairs(keys) do if kk == k then known = true end end
    if not known then parts[#parts + 1] = string.format("%q: %s", k, enc(v)) end
  end
  io.write("{" .. table.concat(parts, ", ") .. "}\n")
  io.flush()
end
return U
