-- spec/helper.lua — shared by every spec: paths, fixtures, small utilities.
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path

local H = {}
_G.spec_helper = H

H.root = os.getenv("PWD") or "."

--- Directory of the shared real-data fixtures, or nil.
function H.fixtures_dir()
  local d = os.getenv("SPORE_FIXTURES") or (H.root .. "/../shared/fixtures")
  local f = io.open(d .. "/README.md", "rb")
  if f then f:close() return d end
  return nil
end

--- Path of a shared fixture, or nil plus a message naming the missing file.
function H.fixture(rel)
  local d = H.fixtures_dir() or ((os.getenv("SPORE_FIXTURES") or "../shared/fixtures"))
  local p = d .. "/" .. rel
  local f = io.open(p, "rb")
  if f then f:close() return p end
  return nil, "fixture missing: " .. p .. " (set SPORE_FIXTURES)"
end

--- Path of a committed spec fixture (spec/fixtures/...), or nil + message.
function H.local_fixture(rel)
  local p = H.root .. "/spec/fixtures/" .. rel
  local f = io.open(p, "rb")
  if f then f:close() return p end
  return nil, "spec fixture missing: " .. p
end

--- Run a shell command; returns stdout, exit code.
function H.run(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"", "r")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return out:gsub("__rc=%d+%s*$", ""), rc
end

--- Resident set size of this process in bytes (Linux).
function H.rss()
  local f = io.open("/proc/self/statm", "rb")
  local s = f:read("*a")
  f:close()
  local pages = tonumber(s:match("^%d+%s+(%d+)"))
  return pages * 4096
end

function H.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end

--- Max |a - b| over two flat arrays or two Tensors (compared as flat arrays; the
-- lengths must agree: a Tensor's # is 0 under LuaJIT, which once made this vacuous).
function H.max_abs_diff(a, b)
  if type(a) == "table" and a.shape then a = a:flatten():totable() end
  if type(b) == "table" and b.shape then b = b:flatten():totable() end
  assert(#a == #b, ("max_abs_diff: %d values against %d"):format(#a, #b))
  local m = 0
  for i = 1, #a do m = math.max(m, math.abs(a[i] - b[i])) end
  return m
end

--- Random BatchNorm statistics and affine parameters in net (in place), so that an eval-mode
-- fold of BatchNorm into a convolution is not the identity.
function H.perturb_batchnorm(net)
  for _, p in ipairs(net:parameters()) do
    local n = p.name
    if n:match("moving_variance$") then p.data:uniform_(0.5, 1.5)
    elseif n:match("moving_mean$") or n:match("beta$") then p.data:normal_(0, 0.1)
    elseif n:match("gamma$") then p.data:uniform_(0.5, 1.5) end
  end
  return net
end

function H.read_file(p) local f = assert(io.open(p, "rb")); local s = f:read("*a"); f:close(); return s end
function H.write_file(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
--- The raw bytes of a contiguous tensor (copied to the host first when it lives on a device).
function H.bytes_of(t)
  if t:device() ~= "cpu" then t = t:to("cpu") end
  return require("ffi").string(t:ptr(), t:nbytes())
end

--- SHA-256 (hex) of many strings at once, through sha256sum.
function H.sha256_all(strings)
  local dir = H.tmpdir()
  local names = {}
  for i, s in ipairs(strings) do H.write_file(dir .. "/" .. i, s); names[i] = dir .. "/" .. i end
  local out = H.run("sha256sum " .. table.concat(names, " "))
  local res = {}
  for h, p in out:gmatch("(%x+)%s+(%S+)") do res[tonumber(p:match("(%d+)$"))] = h end
  os.execute("rm -rf " .. dir)
  return res
end

return H
