-- gen_spore_seeded.lua — the fixed-seed golden of spore's own random pipeline: the zoo's
-- imagenet train chain at image_size 32 (RandomResizedCrop, RandomHorizontalFlip,
-- Normalize, HWC2CHW) over the four committed zoo images, ImageFolder loader seed 7, one
-- batch in file order. spec/data_image_spec.lua checks that spore still draws exactly this
-- (whatever the thread count); MindSpore's own numbers differ (its generator is not
-- spore's), its statistics are checked against gen_zoo_pipeline.py's goldens instead.
--   luajit scripts/gen/gen_spore_seeded.lua      # writes spec/fixtures/zoo/spore_seed7_train32.npy
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local spore = require("spore")
local data = spore.data
local Z = spore._root .. "/spec/fixtures/zoo/"
local files = { Z .. "a.jpg", Z .. "b.png", Z .. "g.jpg", Z .. "p.jpg" }
local ds = data.image_files(files, { 0, 1, 2, 3 }, { batch = 4, shuffle = false, seed = 7,
  transforms = data.zoo_pipeline("imagenet", { train = true, image_size = 32 }) })
local x = ds:batches()()
data.save_npy(Z .. "spore_seed7_train32.npy", x)
print("wrote " .. Z .. "spore_seed7_train32.npy " .. table.concat(x:shape(), "x"))
