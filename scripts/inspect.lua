dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
-- inspect.lua FILE [--json] [--crc] [--dec-key KEY] [--dec-mode MODE]
-- Lists every tensor of a MindSpore .ckpt, a safetensors or a PyTorch .pth file: name, dtype, shape,
-- bytes, min/max/mean; then the CRC trailer, encryption and metadata.
local USAGE = [[
usage: luajit scripts/inspect.lua FILE [--json] [--crc] [--dec-key KEY] [--dec-mode MODE]
  FILE            a MindSpore .ckpt, a .safetensors or a PyTorch .pth file (format detected from content)
  --json          one JSON object: {"file","format","size","crc","encryption","metadata","tensors":[...]}
  --crc           verify the CRC (crc_num trailer / metadata) and fail on a mismatch
  --dec-key KEY   decrypt an encrypted .ckpt; --dec-mode AES-GCM (default) | AES-CBC | SM4-CBC
  -h, --help      this text]]

local function usage_error(msg)
  io.stderr:write("inspect: " .. msg .. "\n" .. USAGE .. "\n")
  os.exit(2)
end

local args, opts = {}, {}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then print(USAGE) os.exit(0)
  elseif a == "--json" then opts.json = true
  elseif a == "--crc" then opts.crc = true
  elseif a == "--dec-key" or a == "--dec-mode" then
    if not arg[i + 1] then usage_error(a .. " needs a value") end
    opts[a == "--dec-key" and "dec_key" or "dec_mode"] = arg[i + 1]; i = i + 1
  elseif a:sub(1, 1) == "-" and a ~= "-" then usage_error("unknown option " .. a)
  else args[#args + 1] = a end
  i = i + 1
end
if #args ~= 1 then usage_error(#args == 0 and "missing FILE" or "expected exactly one FILE") end

-- JSON strings: valid UTF-8 always (a name with invalid bytes gets U+FFFD for each)
local utf8_valid = require("spore.json").utf8_valid
local function jstr(s)
  return '"' .. utf8_valid(s):gsub('[%c"\\]', function(c)
    local m = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r' }
    return m[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end
local function jnum(x)
  if x == nil then return "null" end
  if x ~= x then return '"nan"' end
  if x == math.huge then return '"inf"' elseif x == -math.huge then return '"-inf"' end
  return string.format("%.17g", x)
end

local ok, err = pcall(function()
  local ckpt = require("spore.ckpt")
  local path = args[1]
  -- the engine opens the file first: it refuses a FIFO or a directory without blocking
  local res = ckpt.read_raw(path, { crc_check = opts.crc, dec_key = opts.dec_key, dec_mode = opts.dec_mode, lazy = true })
  local f = io.open(path, "rb")
  local size = f and f:seek("end") or 0
  if f then f:close() end
  local rows = {}
  for _, e in ipairs(res.entries) do
    local r = { name = e.name, type = e.type, dtype = e.dtype or e.type, shape = e.shape, bytes = e.nbytes }
    if e.tensor_fn then
      local t = e.tensor_fn()
      if t:numel() > 0 then
        local x = t.dtype and (t:dtype():match("int") or t:dtype() == "bool") and t or t
        r.min, r.max, r.mean = x:min(), x:max(), x:mean()
      end
      t:free()
    elseif e.type == "str" then
      r.value = ckpt.utf32_decode(e.bytes)
    end
    rows[#rows + 1] = r
  end
  if opts.json then
    local parts = {}
    for _, r in ipairs(rows) do
      local s = {}
      for d = 1, #r.shape do s[d] = tostring(r.shape[d]) end
      parts[#parts + 1] = string.format('{"name":%s,"type":%s,"dtype":%s,"shape":[%s],"bytes":%d,"min":%s,"max":%s,"mean":%s%s}',
        jstr(r.name), jstr(r.type), jstr(r.dtype), table.concat(s, ","), r.bytes, jnum(r.min), jnum(r.max), jnum(r.mean),
        r.value and (',"value":' .. jstr(r.value)) or "")
    end
    print(string.format('{"file":%s,"format":%s,"size":%d,"crc":{"present":%s,"verified":%s,"value":%s},'
      .. '"encryption":%s,"metadata":%s,"tensors":[%s]}', jstr(path), jstr(res.format), size,
      tostring(res.crc.present), tostring(res.crc.verified), jnum(res.crc.value), jstr(res.encryption),
      res.metadata ~= "" and utf8_valid(res.metadata) or "null", table.concat(parts, ",")))
    return
  end
  print(string.format("%s: %s, %d bytes, %d entries", path, res.format, size, #rows))
  local total = 0
  for _, r in ipairs(rows) do
    total = total + r.bytes
    local shape = "[" .. table.concat(r.shape, ",") .. "]"
    if r.value then
      print(string.format("  %-40s %-9s %-16s %10d  %q", r.name, r.dtype, shape, r.bytes, r.value))
    elseif r.min then
      print(string.format("  %-40s %-9s %-16s %10d  min %.6g max %.6g mean %.6g", r.name, r.dtype, shape, r.bytes,
        r.min, r.max, r.mean))
    else
      print(string.format("  %-40s %-9s %-16s %10d", r.name, r.dtype, shape, r.bytes))
    end
  end
  print(string.format("total tensor bytes: %d", total))
  if res.crc.present then
    print(string.format("crc: %u (%s)", res.crc.value, res.crc.verified and "verified" or "not verified; pass --crc"))
  else
    print("crc: none")
  end
  print("encryption: " .. (res.encryption ~= "" and res.encryption or "none"))
  if res.metadata ~= "" then print("metadata: " .. res.metadata) end
end)
if not ok then
  io.stderr:write("inspect: " .. (tostring(err):match("^[^\n]*"):gsub("^[^:]*%.lua:%d+: ", "")) .. "\n")
  os.exit(1)
end
