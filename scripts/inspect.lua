-- inspect.lua FILE [--json] [--crc] [--dec-key KEY] [--dec-mode MODE] [--quiet]
-- Lists every tensor of a MindSpore .ckpt, a safetensors or a PyTorch .pth file: name, dtype, shape,
-- bytes, min/max/mean; then the CRC trailer, encryption and metadata. Ends with one JSON line:
-- a summary {"file","format","size","entries","bytes","crc","encryption"}, or with --json the whole
-- listing {"file","format","size","crc","encryption","metadata","tensors":[...]} (and nothing else).
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "inspect.lua",
  summary = "List the tensors of a MindSpore .ckpt, a .safetensors or a PyTorch .pth file (format detected from"
    .. " content): name, dtype, shape, bytes, min/max/mean; then the CRC trailer, encryption and metadata.",
  epilog = "The last stdout line is JSON: a summary, or with --json the whole listing (NaN/Inf are written as null).",
  args = { { "file", "a .ckpt, .safetensors or .pth file" } },
  options = {
    { "--json", "flag", false, "print only one JSON object with every tensor: "
      .. '{"file","format","size","crc","encryption","metadata","tensors":[...]}' },
    "crc", "dec_key", "dec_mode", { "quiet", help = "no listing: only the final JSON summary line" },
  },
}

cli.main(spec, function(o)
  local ckpt = require("spore.ckpt")
  local json = require("spore.json")
  local path = o.file
  -- the engine opens the file first: it refuses a FIFO or a directory without blocking
  local res = ckpt.read_raw(path, { crc_check = o.crc, dec_key = o.dec_key, dec_mode = o.dec_mode, lazy = true })
  local f = io.open(path, "rb")
  local size = f and f:seek("end") or 0
  if f then f:close() end
  local rows, total = {}, 0
  for _, e in ipairs(res.entries) do
    local r = json.ordered({ name = e.name, type = e.type, dtype = e.dtype or e.type, shape = e.shape, bytes = e.nbytes },
      { "name", "type", "dtype", "shape", "bytes", "min", "max", "mean" })
    if e.tensor_fn then
      local t = e.tensor_fn()
      if t:numel() > 0 then
        r.min = t:min(); r.max = t:max(); r.mean = t:mean()
      end
      t:free()
    elseif e.type == "str" then
      r.value = ckpt.utf32_decode(e.bytes)
    end
    rows[#rows + 1] = r
    total = total + r.bytes
  end
  local crc = json.ordered(res.crc, { "present", "verified", "value" })
  local out = json.ordered({ file = path, format = res.format, size = size }, { "file", "format", "size" })
  if o.json then
    out.crc = crc
    out.encryption = res.encryption
    local meta = json.null
    if res.metadata ~= "" then
      local ok, m = pcall(json.decode, res.metadata)
      meta = ok and m or res.metadata -- metadata that is not JSON is kept as a string
    end
    out.metadata = meta
    out.tensors = rows
    return out
  end
  if not o.quiet then
    print(string.format("%s: %s, %d bytes, %d entries", path, res.format, size, #rows))
    for _, r in ipairs(rows) do
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
  end
  out.entries = #rows
  out.bytes = total
  out.crc = crc
  out.encryption = res.encryption
  return out
end)
