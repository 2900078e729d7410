-- tensor_spec.lua — the Tensor class through the FFI: construction, views,
-- arithmetic against naive loops, printing, errors.
local spore = require("spore")
local H = spec_helper

describe("tensor construction", function()
  it("builds from nested tables with the inferred shape", function()
    local t = spore.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.same({2, 3}, t:shape())
    assert.equal("float32", t:dtype())
    assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
    assert.equal(6, t:get{2, 3})
    assert.equal(4, t[2][1])
  end)
  it("accepts a dtype and keeps integer values exact", function()
    local t = spore.tensor({2^40 + 1, -7}, "int64")
    assert.equal("int64", t:dtype())
    assert.equal(2^40 + 1, t[1])
    assert.equal(-7, t[2])
  end)
  it("rejects ragged tables and non-numbers with a message", function()
    assert.has_error(function() spore.tensor{{1, 2}, {3}} end, "tensor(): ragged nested table at [2] (expected 2 entries)")
    local ok, err = pcall(spore.tensor, {1, "x"})
    assert.is_false(ok)
    assert.matches("element at %[2%] is string", err)
  end)
  it("rejects an unknown dtype naming it", function()
    local ok, err = pcall(spore.zeros, {2}, "complex64")
    assert.is_false(ok)
    assert.matches("unknown dtype 'complex64'", err)
  end)
  it("zeros, ones, full, arange", function()
    assert.same({0, 0, 0}, spore.zeros{3}:totable())
    assert.same({{1, 1}}, spore.ones({1, 2}):totable())
    assert.same({7, 7}, spore.full({2}, 7, "int32"):totable())
    assert.same({2, 4, 6}, spore.arange(2, 8, 2):totable())
    assert.same({0, 1, 2, 3}, spore.arange(4):totable())
  end)
  it("random generators are reproducible from a seed", function()
    spore.manual_seed(123)
    local a = spore.randn{50}:flat()
    spore.manual_seed(123)
    local b = spore.randn{50}:flat()
    assert.same(a, b)
    local c = spore.randn{50}:flat()
    assert.is_true(H.max_abs_diff(a, c) > 0)
  end)
end)

describe("element access", function()
  it("is 1-based and checks bounds", function()
    local t = spore.arange(6):reshape(2, 3)
    assert.equal(0, t:get{1, 1})
    assert.equal(5, t:get{2, 3})
    assert.equal(5, t:get{-1, -1})
    local ok, err = pcall(function() return t:get{3, 1} end)
    assert.is_false(ok)
    assert.matches("index 3 is out of range for dimension 1 of size 2", err)
    ok, err = pcall(function() return t[1][4] end)
    assert.is_false(ok)
    assert.matches("out of range", err)
    ok, err = pcall(function() return t:size(3) end)
    assert.matches("dimension 3 is out of range for a 2%-d tensor %(dimensions are 1%-based%)", err)
    ok, err = pcall(function() return t:sum(-3) end)
    assert.matches("dimension %-3 is out of range", err)   -- the position as given, not rewritten
    ok, err = pcall(function() return t:select(2, -4) end)
    assert.matches("select: index %-4 is out of range for dimension 2 of size 3 %(positions are 1%-based%)", err)
    ok, err = pcall(function() return t:narrow(2, 3, 2) end)
    assert.matches("narrow: start 3 and length 2 do not fit dimension 2 of size 3 %(start is 1%-based", err)
    ok, err = pcall(function() return t:narrow(2, 0, 1) end)
    assert.is_false(ok)
    assert.same({{1, 2}, {4, 5}}, t:narrow(2, 2, 2):totable())
    t:set({1, 2}, 42)
    assert.equal(42, t[1][2])
    t[2] = 9
    assert.same({9, 9, 9}, t[2]:totable())
  end)
end)

describe("views", function()
  it("share storage and count references", function()
    local t = spore.zeros{3, 4}
    assert.equal(1, t:storage_refcount())
    local r = t:reshape(12)
    local tr = t:transpose(1, 2)
    assert.equal(3, t:storage_refcount())
    assert.is_true(t:shares_storage(tr))
    r[5] = 3.5 -- row 2, col 1
    assert.equal(3.5, t:get{2, 1})
    assert.equal(3.5, tr:get{1, 2})
    assert.is_false(tr:is_contiguous())
    local c = tr:contiguous()
    assert.is_false(c:shares_storage(t))
    assert.same({4, 3}, c:shape())
    r:free()
    assert.equal(2, t:storage_refcount())
  end)
  it("free is idempotent and a freed tensor errors instead of crashing", function()
    local t = spore.ones{4}
    t:free()
    t:free()
    assert.has_error(function() return t:sum() end, "tensor was freed")
    assert.equal("tensor(<freed>)", tostring(t))
  end)
  it("narrow and select address the right elements", function()
    local t = spore.arange(12):reshape(3, 4)
    assert.same({{1, 2}, {5, 6}, {9, 10}}, t:narrow(2, 2, 2):totable())
    assert.same({2, 6, 10}, t:select(2, 3):totable())
  end)
end)

describe("arithmetic", function()
  local function naive(a, b, f)
    local out = {}
    for i = 1, #a do out[i] = f(a[i], b[i]) end
    return out
  end
  it("elementwise ops agree with a naive loop (float64)", function()
    spore.manual_seed(1)
    local a, b = spore.randn({5, 7}, 0, 1, "float64"), spore.rand({5, 7}, 0.5, 2, "float64")
    local fa, fb = a:flat(), b:flat()
    assert.same(naive(fa, fb, function(x, y) return x + y end), (a + b):flat())
    assert.same(naive(fa, fb, function(x, y) return x - y end), (a - b):flat())
    assert.same(naive(fa, fb, function(x, y) return x * y end), (a * b):flat())
    assert.same(naive(fa, fb, function(x, y) return x / y end), (a / b):flat())
    assert.same(naive(fa, fa, function(x) return -x end), (-a):flat())
    assert.same(naive(fa, fa, function(x) return 2 * x + 1 end), (a * 2 + 1):flat())
    assert.same(naive(fa, fa, function(x) return 1 - x end), (1 - a):flat())
  end)
  it("broadcasts like numpy and names the shapes when it cannot", function()
    local m = spore.arange(6):reshape(2, 3)
    local row = spore.tensor{10, 20, 30}
    assert.same({{10, 21, 32}, {13, 24, 35}}, (m + row):totable())
    local ok, err = pcall(function() return m + spore.ones{2} end)
    assert.is_false(ok)
    assert.matches("shapes %[2, 3%] and %[2%] cannot be broadcast together", err)
  end)
  it("matmul agrees with a naive triple loop", function()
    spore.manual_seed(3)
    local a, b = spore.randn({6, 5}, 0, 1, "float64"), spore.randn({5, 4}, 0, 1, "float64")
    local c = a:matmul(b)
    local A, Bt, Ct = a:totable(), b:totable(), c:totable()
    for i = 1, 6 do for j = 1, 4 do
      local s = 0
      for k = 1, 5 do s = s + A[i][k] * Bt[k][j] end
      assert.is_true(math.abs(s - Ct[i][j]) < 1e-12)
    end end
    -- a transposed view goes through without a copy and gives the same result
    local at = a:t():contiguous():t()
    assert.same(c:flat(), at:matmul(b):flat())
  end)
  it("matmul rejects mismatched shapes with a clear error", function()
    local ok, err = pcall(function() return spore.ones{2, 3}:matmul(spore.ones{2, 3}) end)
    assert.is_false(ok)
    assert.matches("matmul: inner dimensions differ: %[2, 3%] x %[2, 3%]", err)
    ok, err = pcall(function() return spore.ones{3}:matmul(spore.ones{3, 1}) end)
    assert.matches("expected 2%-d tensors", err)
  end)
  it("reductions: sum, mean, max, argmax (0-based indices as stored data, first max wins)", function()
    local t = spore.tensor{{1, 5, 5}, {7, 2, 0}}
    assert.equal(20, t:sum())
    assert.equal(20 / 6, t:mean())
    assert.equal(7, t:max())
    assert.equal(3, t:argmax())            -- 0-based flat index of the 7
    assert.equal(5, t:argmin())            -- the 0
    assert.same({1, 0}, t:argmax(2):totable())
    assert.same({0, 2}, t:argmin(2):totable())
    assert.same({1, 0, 0}, t:argmax(1):totable())
    assert.equal("int64", t:argmax(2):dtype())
    -- argmax over classes compares with 0-based labels directly, no +1/-1
    local labels = spore.tensor({1, 2}, "int64")
    assert.equal(1, t:argmax(2):count_equal(labels))
    assert.same({8, 7, 5}, t:sum(1):totable())
    assert.same({{11}, {9}}, t:sum(2, true):totable())
  end)
  it("casts between dtypes with rounding and saturation", function()
    local t = spore.tensor{1.5, -2.7, 300, 0.1}
    assert.same({1, -2, 127, 0}, t:to("int8"):totable())
    assert.same({1, 0, 255, 0}, t:to("uint8"):totable())
    assert.equal(0.0999755859375, t:to("float16"):to("float64")[4]) -- 0x2e66
    assert.equal(0.10009765625, t:to("bfloat16"):to("float64")[4])  -- 0x3dcd
  end)
end)

describe("printing", function()
  it("prints like PyTorch", function()
    assert.equal("tensor([[1., 2.],\n        [3., 4.]])", tostring(spore.tensor{{1, 2}, {3, 4}}))
    assert.equal("tensor([1.5000, 2.2500])", tostring(spore.tensor{1.5, 2.25}))
    assert.equal("tensor([1, 2], dtype=int32)", tostring(spore.tensor({1, 2}, "int32")))
    assert.equal("tensor(3.5000)", tostring(spore.tensor(3.5)))
  end)
  it("summarises past 1,000 elements", function()
    local s = tostring(spore.arange(2000))
    assert.equal("tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.])", s)
    local m = tostring(spore.zeros{100, 100})
    assert.matches("%.%.%.", m)
    assert.is_true(#m < 600)
  end)
end)

describe("topk (values sorted; indices int64, 0-based)", function()
  -- naive reference: sort positions by (value desc | asc, then lower index first)
  local function naive(row, k, largest)
    local idx = {}
    for i = 1, #row do idx[i] = i end
    table.sort(idx, function(a, b)
      if row[a] ~= row[b] then if largest then return row[a] > row[b] else return row[a] < row[b] end end
      return a < b
    end)
    local v, ix = {}, {}
    for j = 1, k do v[j] = row[idx[j]]; ix[j] = idx[j] - 1 end
    return v, ix
  end
  it("matches a naive sort along the last and the first dim, ties lower index first", function()
    spore.manual_seed(3)
    local x = (spore.rand({6, 7}, 0, 4)):to("int32"):to("float32") -- many ties
    local rows = x:totable()
    for _, largest in ipairs({ true, false }) do
      for k = 0, 7 do
        local v, ix = x:topk(k, 2, largest)
        assert.same({6, k}, v:shape())
        assert.equal("int64", ix:dtype())
        local vt, it_ = v:totable(), ix:totable()
        for r = 1, 6 do
          local wv, wi = naive(rows[r], k, largest)
          assert.same(wv, vt[r])
          assert.same(wi, it_[r])
        end
      end
      local v, ix = x:topk(3, 1, largest)
      local vt, xt = v:totable(), ix:totable()
      for c = 1, 7 do
        local col = {}
        for r = 1, 6 do col[r] = rows[r][c] end
        local wv, wi = naive(col, 3, largest)
        for j = 1, 3 do assert.equal(wv[j], vt[j][c]); assert.equal(wi[j], xt[j][c]) end
      end
    end
  end)
  it("defaults to the last dim and largest; checks k", function()
    local v, ix = spore.tensor{3, 1, 3, 2}:topk(2)
    assert.same({3, 3}, v:totable())
    assert.same({0, 2}, ix:totable())
    local ok, err = pcall(function() return spore.tensor{1, 2}:topk(3) end)
    assert.is_false(ok)
    assert.matches("topk: k = 3 is out of range for dimension 1 of size 2", err)
  end)
  it("top-1 index equals argmax", function()
    spore.manual_seed(5)
    local x = spore.randn{9, 11}
    local _, ix = x:topk(1, 2)
    assert.same(x:argmax(2):totable(), ix:reshape(9):totable())
  end)
end)

describe("copy_ onto an overlapping view of itself (issue #8, b4)", function()
  local function transpose_table(t)
    local out = {}
    for i = 1, #t[1] do out[i] = {} for j = 1, #t do out[i][j] = t[j][i] end end
    return out
  end
  it("a:copy_(a:t()) transposes in place for 2x2 and 3x3", function()
    for _, n in ipairs({ 2, 3 }) do
      local a = spore.arange(1, n * n + 1):reshape(n, n)
      local want = transpose_table(a:totable())
      a:copy_(a:t())
      assert.same(want, a:totable())
    end
  end)
  it("non-square and shifted overlapping narrow views read the values before the write", function()
    local c = spore.arange(16, nil, nil, "int32"):reshape(4, 4)
    local src = c:narrow(2, 2, 3):t()            -- 3x4, overlaps rows 1..3
    local want = src:clone():totable()
    c:narrow(1, 1, 3):copy_(src)
    assert.same(want, c:narrow(1, 1, 3):totable())
    local b = spore.arange(10, nil, nil, "float64")
    local lo, hi = b:narrow(1, 1, 7), b:narrow(1, 4, 7)
    hi:copy_(lo)
    assert.same({0, 1, 2, 0, 1, 2, 3, 4, 5, 6}, b:totable())
    b = spore.arange(10, nil, nil, "float64")
    b:narrow(1, 1, 7):copy_(b:narrow(1, 4, 7))
    assert.same({3, 4, 5, 6, 7, 8, 9, 7, 8, 9}, b:totable())
    -- strided overlap: every other element shifted by one
    local s = spore.arange(8):reshape(4, 2)
    local w = s:t():clone():totable()
    s:reshape(2, 4):copy_(s:t())
    assert.same(w, s:reshape(2, 4):totable())
  end)
end)

describe("Tensor:to with two arguments", function()
  it("takes one device and one dtype in either order, and refuses anything else", function()
    local t = spore.tensor({ 1.5, 2 })
    local a, b = t:to("sim", "float64"), t:to("float64", "sim")
    assert.equal("float64", a:dtype()); assert.equal("sim", a:device())
    assert.equal("float64", b:dtype()); assert.equal("sim", b:device())
    assert.same({ 1.5, 2 }, a:to("cpu"):totable())
    for _, bad in ipairs({ { "cpu", { non_blocking = true } }, { "cpu", "sim" }, { "float32", "int32" } }) do
      local ok, err = pcall(t.to, t, bad[1], bad[2])
      assert.is_false(ok); assert.truthy(tostring(err):find("one of each", 1, true), tostring(err))
    end
  end)
end)

describe("shape queries (the modules' buffer checks)", function()
  it("shape() and has_shape() agree on every rank, and a mismatch anywhere is found", function()
    local cases = { {}, { 7 }, { 2, 3 }, { 2, 3, 4, 5 }, { 1, 1, 1, 1, 1, 1, 1, 9 } }
    for _, s in ipairs(cases) do
      local t = spore.zeros(s)
      assert.same(s, t:shape())
      assert.is_true(t:has_shape(s))
      for i = 1, #s do
        local o = {}
        for j = 1, #s do o[j] = s[j] end
        o[i] = s[i] + 1
        assert.is_false(t:has_shape(o), "dimension " .. i .. " of " .. #s)
        o[i] = s[i] + 0.5
        assert.is_false(t:has_shape(o))
      end
      local longer = { 1 }
      for j = 1, #s do longer[j + 1] = s[j] end
      assert.is_false(t:has_shape(longer))
    end
    -- a view's shape, and a tensor resized in place
    local t = spore.zeros({ 4, 6 })
    assert.is_true(t:view({ 3, 8 }):has_shape({ 3, 8 }))
    local r = spore.zeros({ 4, 6 })
    assert.is_true(r:try_resize_({ 2, 6 }))
    assert.is_true(r:has_shape({ 2, 6 })); assert.is_false(r:has_shape({ 4, 6 }))
  end)
end)
