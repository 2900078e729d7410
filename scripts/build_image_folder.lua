-- build_image_folder.lua — write an idx data set (MNIST / Fashion-MNIST format) out as an
-- image folder of JPEG files, one folder per class, for spore.data.ImageFolderDataset and the
-- ResNet scripts. Set-up time only (make demo-data): the images come from a Debian package
-- (dataset-fashion-mnist) or a directory given; the JPEG encoder is Debian's cjpeg
-- (libjpeg-turbo-progs), since spore decodes images but does not encode them.
--   luajit scripts/build_image_folder.lua --out DIR [--idx-dir DIR] [--split test]
--     [--names fashion|digits] [--per-class N] [--quality 90]
-- Files are DIR/<class>/<index>.jpg (RGB, R=G=B); class folder names sort in label order.
-- Writes into DIR.tmp first and renames it at the end: an interrupted run leaves no half folder.
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local NAMES = {
  fashion = { "0_tshirt-top", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal", "6_shirt",
    "7_sneaker", "8_bag", "9_ankle-boot" },
  digits = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" },
}

local spec = {
  name = "build_image_folder.lua",
  summary = "Write an idx data set as a folder of JPEG images, one subfolder per class (uses Debian's cjpeg).",
  options = {
    { "--out", "string", nil, "output folder (required; replaced if it exists)" },
    { "--idx-dir", "string", "/usr/share/datasets/fashion-mnist", "folder of the idx files" },
    { "--split", "string", "test", "train | test" },
    { "--names", "string", "fashion", "class folder names: fashion | digits" },
    { "--per-class", "int", nil, "at most N images per class (default: all)" },
    { "--quality", "int", 90, "JPEG quality" },
  },
}

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

cli.main(spec, function(o)
  local spore = require("spore")
  if not o.out then cli.usage_error("--out DIR is required") end
  local names = NAMES[o.names]
  if not names then cli.usage_error("--names must be fashion or digits") end
  if os.execute("command -v cjpeg >/dev/null 2>&1") ~= 0 then
    error("cjpeg not found: install libjpeg-turbo-progs (make deps)", 0)
  end
  local ds = spore.data.mnist(o.idx_dir, { split = o.split, transforms = {}, shuffle = false, batch = 1 })
  local n = ds:size()
  local tmp = o.out .. ".tmp"
  assert(os.execute("rm -rf " .. sh_quote(tmp) .. " && mkdir -p " .. sh_quote(tmp)) == 0)
  for _, c in ipairs(names) do assert(os.execute("mkdir -p " .. sh_quote(tmp .. "/" .. c)) == 0) end
  local count, written = {}, 0
  -- one shell reads "ppm-path jpg-path" lines and runs cjpeg on each (no process per image from Lua)
  local enc = io.popen("while read -r src dst; do cjpeg -quality " .. o.quality
    .. " \"$src\" > \"$dst\" && rm -f \"$src\" || exit 1; done", "w")
  for i = 1, n do
    local img, lab = ds:sample(i)
    lab = math.floor(tonumber(lab))
    count[lab] = (count[lab] or 0) + 1
    if not o.per_class or count[lab] <= o.per_class then
      local h, w = img:size(1), img:size(2)
      local px = img:contiguous():totable()
      local bytes = {}
      for y = 1, h do
        local row = px[y]
        for x = 1, w do
          local c = string.char(row[x])
          bytes[#bytes + 1] = c .. c .. c
        end
      end
      local base = ("%s/%s/%05d"):format(tmp, names[lab + 1], i - 1)
      local f = assert(io.open(base .. ".ppm", "wb"))
      f:write(("P6\n%d %d\n255\n"):format(w, h), table.concat(bytes))
      f:close()
      enc:write(base .. ".ppm ", base .. ".jpg\n")
      written = written + 1
    end
  end
  local ok = enc:close()
  if not ok then error("cjpeg failed while writing " .. tmp, 0) end
  assert(os.execute("rm -rf " .. sh_quote(o.out) .. " && mv " .. sh_quote(tmp) .. " " .. sh_quote(o.out)) == 0)
  io.stderr:write(("build_image_folder.lua: %d JPEG images in %d class folders under %s\n"):format(
    written, #names, o.out))
  local res = require("spore.json").ordered()
  res.out, res.images, res.classes = o.out, written, #names
  return res
end)
