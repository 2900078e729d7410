-- cli_spec.lua — spore.cli (the scripts' one convention on lua-argparse) and spore.json.
local cli = require("spore.cli")
local json = require("spore.json")

local spec = { name = "x.lua", summary = "test", options = {
  "net", "batch", { "lr", nodefault = true }, { "--load-optimizer", "flag", false, "load state" },
  { "--freeze", "list", nil, "prefixes" }, "quiet", { "--split", "string", "test", "split", choices = { "train", "test" } } } }

describe("cli.parse", function()
  it("applies defaults, converts types, takes --opt=value and --opt value", function()
    local o = cli.parse(spec, { "--batch", "64", "--lr=0.5", "--load-optimizer", "--freeze", "conv1,fc1" })
    assert.equal("lenet5", o.net)
    assert.equal(64, o.batch)
    assert.equal(0.5, o.lr)
    assert.is_true(o.load_optimizer)
    assert.is_false(o.quiet)
    assert.same({ "conv1", "fc1" }, o.freeze)
    assert.equal("test", o.split)
    assert.is_nil(cli.parse(spec, {}).lr)
    assert.equal(-3, cli.parse(spec, { "--batch", "-3" }).batch) -- a negative value is a value
  end)
  it("rejects unknown options (naming the nearest), missing values and malformed numbers", function()
    local function msg(argv)
      local ok, e = pcall(cli.parse, spec, argv)
      assert.is_false(ok)
      return tostring(e.msg or e)
    end
    assert.equal("unknown option '--nope'", msg({ "--nope" }))
    assert.equal("unknown option '--bach'\ndid you mean '--batch'?", msg({ "--bach", "3" }))
    assert.equal("unknown option '--quite'\ndid you mean '--quiet'?", msg({ "--quite" }))
    assert.matches("^option '%-%-batch' requires an argument", msg({ "--batch" }))
    assert.equal("--lr expects a number, got 'fast'", msg({ "--lr", "fast" }))
    assert.equal("--batch expects an integer, got '1.5'", msg({ "--batch=1.5" }))
    assert.equal("--split must be one of train, test, got 'val'", msg({ "--split", "val" }))
    assert.matches("^too many arguments", msg({ "foo" }))
  end)
  it("--help wins over everything else and the help lists every option with its default", function()
    assert.is_true(cli.parse(spec, { "--nope", "--help" }).help)
    local u = cli.help(spec)
    assert.matches("^usage: luajit scripts/x%.lua", u)
    assert.matches("%-%-batch <batch>%s+batch size %(default: 32%)", u)
    assert.matches("%-%-load%-optimizer", u)
    assert.matches("%-%-quiet%s+only warnings, errors and the final JSON line", u)
  end)
  it("a common flag has one meaning: the table of shared flags", function()
    for name, c in pairs(cli.COMMON) do
      assert.equal("--" .. name:gsub("_", "-"), c[1])
      assert.truthy(({ string = 1, int = 1, number = 1, flag = 1, list = 1 })[c[2]], name)
      assert.is_string(c[4])
    end
    assert.has_error(function() cli.parse({ name = "y.lua", options = { "no_such_flag" } }, {}) end)
  end)
end)

describe("json", function()
  it("encodes scalars, arrays, objects (sorted or ordered) and escapes strings", function()
    assert.equal('{"a":1,"b":[1,2.5,"x"],"c":null}', json.encode({ b = { 1, 2.5, "x" }, a = 1, c = 0 / 0 }))
    local o = json.ordered()
    o.z = true; o.a = "q\"\n"
    assert.equal('{"z":true,"a":"q\\"\\n"}', json.encode(o))
    assert.equal('{"b":2,"a":1,"c":null}', json.encode(json.ordered({ a = 1, b = 2 }, { "b", "a", "c" })))
    assert.equal("[]", json.encode({}))
    assert.equal("{}", json.encode(json.object()))
    assert.equal("0.1", json.encode(0.1))
  end)
  it("NaN and ±Inf are null everywhere; numbers round-trip exactly", function()
    assert.equal("[null,null,null]", json.encode({ 0 / 0, math.huge, -math.huge }))
    for _, x in ipairs({ 1 / 3, 2 ^ 60 + 2 ^ 9, -1e-300, 0.1 + 0.2, 123456789.123 }) do
      assert.equal(x, json.decode(json.encode({ x }))[1])
    end
  end)
  it("decodes strictly (lua-cjson): refuses NaN, trailing garbage; null is json.null", function()
    assert.same({ a = { 1, 2 }, b = "x" }, json.decode('{"a":[1,2],"b":"x"}'))
    assert.equal(json.null, json.decode("[null]")[1])
    assert.has_error(function() json.decode("[NaN]") end)
    assert.has_error(function() json.decode('{"a":1} x') end)
    assert.matches("^json: ", select(2, pcall(json.decode, "{")))
    -- what we write, we read
    local t = { name = "caf\195\169", v = { 1, 2.5 }, ok = false }
    assert.same(t, json.decode(json.encode(t)))
  end)
end)
