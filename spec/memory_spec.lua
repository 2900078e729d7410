-- memory_spec.lua — the heap-tracking policy: engine memory the GC cannot see
-- is still reclaimed, so allocating 10 GB in 1 MB pieces without free() keeps
-- RSS within 500 MB of where it started (what earlier specs left is not counted).
local spore = require("spore")
local H = spec_helper

describe("heap tracking", function()
  it("keeps RSS growth under 500 MB while 10 GB of 1 MB tensors are dropped without free()", function()
    collectgarbage("collect")
    local rss0 = H.rss()
    local peak = rss0
    for i = 1, 10240 do
      local t = spore.empty({262144}) -- 1 MiB of float32
      t:fill_(i)                      -- touch every page
      if i % 256 == 0 then peak = math.max(peak, H.rss()) end
    end
    peak = math.max(peak, H.rss())
    assert.is_true(peak - rss0 < 500 * 1024 * 1024, ("peak RSS %.0f MB, %.0f MB over the start"):format(peak / 2^20, (peak - rss0) / 2^20))
    assert.is_true(spore.mem_stats().collections > 0)
  end)
  it("counts live bytes and releases them on free()", function()
    collectgarbage("collect")
    local before = spore.mem_stats().live
    local t = spore.zeros{1000}
    assert.equal(before + 4000, spore.mem_stats().live)
    t:free()
    assert.equal(before, spore.mem_stats().live)
  end)
end)
