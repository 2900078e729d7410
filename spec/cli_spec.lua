-- cli_spec.lua — argument parsing of the scripts and the JSON encoder.
local cli = require("spore.cli")
local json = require("spore.json")

local spec = { name = "x.lua", summary = "test", options = {
  { "--net", "string", "lenet5", "network" }, { "--batch", "int", 32, "batch" },
  { "--lr", "number", nil, "learning rate" }, { "--load-optimizer", "flag", false, "load state" },
  { "--freeze", "list", nil, "prefixes" } } }

describe("cli.parse", function()
  it("applies defaults and converts types", function()
    local o = cli.parse(spec, { "--batch", "64", "--lr=0.5", "--load-optimizer", "--freeze", "conv1,fc1" })
    assert.equal("lenet5", o.net)
    assert.equal(64, o.batch)
    assert.equal(0.5, o.lr)
    assert.is_true(o.load_optimizer)
    assert.same({ "conv1", "fc1" }, o.freeze)
  end)
  it("rejects unknown options, missing values and malformed numbers", function()
    local function msg(argv)
      local ok, e = pcall(cli.parse, spec, argv)
      assert.is_false(ok)
      return tostring(e.msg or e)
    end
    assert.equal("unknown option '--nope'", msg({ "--nope" }))
    assert.equal("--batch needs a value", msg({ "--batch" }))
    assert.equal("--lr expects a number, got 'fast'", msg({ "--lr", "fast" }))
    assert.equal("--batch expects an integer, got '1.5'", msg({ "--batch", "1.5" }))
    assert.equal("unexpected argument 'foo'", msg({ "foo" }))
  end)
  it("usage lists every option with its default", function()
    local u = cli.usage(spec)
    assert.matches("%-%-batch INT%s+batch %(default: 32%)", u)
    assert.matches("%-%-load%-optimizer", u)
  end)
end)

describe("json.encode", function()
  it("encodes scalars, arrays, objects (sorted or ordered) and escapes strings", function()
    assert.equal('{"a":1,"b":[1,2.5,"x"],"c":null}', json.encode({ b = { 1, 2.5, "x" }, a = 1, c = 0 / 0 }))
    local o = json.ordered()
    o.z = true; o.a = "q\"\n"
    assert.equal('{"z":true,"a":"q\\"\\n"}', json.encode(o))
    assert.equal("[]", json.encode({}))
    assert.equal("{}", json.encode(json.object()))
    assert.equal("0.1", json.encode(0.1))
  end)
end)
