-- repl_spec.lua — the REPL's pieces driven directly (completion, printing, :help, :time,
-- history, errors, interrupts) and the script through a pipe (--help, the README sample).
-- The real terminal (Ctrl-C, Tab, history across restarts) is repl_tmux_spec.lua (#slow).
local H = spec_helper
local spore = require("spore")
local repl = require("spore.repl")
local pretty = require("spore.pretty")

local function session(opts)
  local out = {}
  opts = opts or {}
  opts.spore = spore
  opts.write = function(s) out[#out + 1] = s end
  local s = repl.new(opts)
  s.env.interrupt = repl.interrupt -- what Ctrl-C does, callable from a chunk
  return s, function()
    local r = table.concat(out)
    for i = #out, 1, -1 do out[i] = nil end
    return r
  end
end

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("REPL completion", function()
  local env = setmetatable({ spore = spore, net = spore.models.lenet5(), t = spore.zeros(2), s = "abc",
    my_value = 1 }, { __index = _G })

  it("completes globals of the session and of Lua, and keywords", function()
    assert.same({ "my_value" }, repl.complete("my_v", env))
    assert.is_true(has(repl.complete("pri", env), "print"))
    assert.is_true(has(repl.complete("whi", env), "while"))
    assert.same({}, repl.complete("no_such_name_at_all", env))
  end)

  it("completes spore names, lazily loaded submodules and re-exports included", function()
    assert.same({ "spore.load_checkpoint" }, repl.complete("spore.load_ch", env))
    assert.is_true(has(repl.complete("spore.", env), "spore.nn"))
    assert.is_true(has(repl.complete("spore.", env), "spore.save_checkpoint"))
    assert.is_true(has(repl.complete("spore.", env), "spore.Model"))
    assert.is_false(has(repl.complete("spore.", env), "spore._exports"), "private names only after '_'")
    assert.is_true(has(repl.complete("spore._", env), "spore._exports"))
    assert.same({ "spore.nn.Conv2d" }, repl.complete("spore.nn.Conv2", env))
  end)

  it("completes methods through metatables and class chains", function()
    assert.same({ "net:forward" }, repl.complete("net:forw", env))       -- LeNet5's own
    assert.is_true(has(repl.complete("net:", env), "net:parameters_and_names")) -- Module's
    assert.is_true(has(repl.complete("net.", env), "net.conv1"))          -- instance fields
    assert.same({ "t:matmul" }, repl.complete("t:matm", env))
    assert.same({ "s:upper" }, repl.complete("s:upp", env))
    assert.is_false(has(repl.complete("net:", env), "net:conv1"), "':' offers functions only")
  end)

  it("offers file names inside a string, and the commands after ':'", function()
    local r, files = repl.complete("/tm", env, 'spore.load_checkpoint("/tm')
    assert.is_nil(r)
    assert.is_true(files)
    assert.is_false(repl.in_string('x = "a" .. b'))
    assert.is_true(repl.in_string('x = "a\\"b'))
    assert.same({ ":time" }, repl.complete(":ti", env))
  end)
end)

describe("REPL printing (spore.pretty)", function()
  it("prints a net as its tree of modules with shapes and parameter counts", function()
    local net = spore.models.lenet5()
    local text = pretty.value(net)
    assert.equal([[
LeNet5: 61,684 parameters (61,684 trainable) on ]] .. net:device() .. [[

  conv1  Conv2d(1, 6, kernel_size=5x5, stride=1, pad_mode=valid)   weight [6, 1, 5, 5]               150
  conv2  Conv2d(6, 16, kernel_size=5x5, stride=1, pad_mode=valid)  weight [16, 6, 5, 5]            2,400
  fc1    Dense(400, 120)                                           weight [120, 400], bias [120]  48,120
  fc2    Dense(120, 84)                                            weight [84, 120], bias [84]    10,164
  fc3    Dense(84, 10)                                             weight [10, 84], bias [10]        850]], text)
    -- the counts are the parameters' numel, counted independently here
    local n = 0
    for _, p in ipairs(spore.models.lenet5():parameters()) do n = n + p.data:numel() end
    assert.equal(61684, n)
  end)

  it("tostring(net) is the same tree; a leaf module keeps its one-line repr", function()
    local net = spore.models.lenet5()
    assert.equal(pretty.module(net), tostring(net))
    assert.equal("Dense(400, 120)", tostring(net.fc1))
    net:freeze("conv1")
    assert.matches("^LeNet5: 61,684 parameters %(61,534 trainable%)", tostring(net))
    assert.matches("150 frozen", tostring(net), 1, true)
  end)

  it("nests: a ResNet's blocks indent under their sequence with subtree counts", function()
    local text = pretty.value(spore.models.resnet18({ num_classes = 10 }))
    assert.matches("\n  layer1 +SequentialCell +148,480\n    0 +ResidualBlock +74,240\n      conv1 +Conv2d%(64, 64", text)
  end)

  it("prints a checkpoint dict as a table, cut after 40 rows with the count", function()
    local list = {}
    for i = 1, 45 do list[i] = { ("layer%02d.weight"):format(i), spore.zeros({ 2, i }) } end
    local text = pretty.value(require("spore.ckpt").dict(list))
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(1 + 1 + 40 + 1, #lines)
    assert.equal("dict: 45 entries, 2,070 elements, 8.1 KiB", lines[1])
    assert.matches("^  name +dtype +shape +size$", lines[2])
    assert.matches("^  layer01%.weight +float32 +%[2, 1%] +8 B$", lines[3]) -- file order kept
    assert.matches("^  layer40%.weight", lines[42])
    assert.equal("  ... and 5 more (45 total)", lines[43])
  end)

  it("prints the real MindSpore LeNet checkpoint in file order", function()
    local path, why = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
    if not path then pending(why) return end
    local text = pretty.value(spore.load_checkpoint(path))
    assert.matches("^dict: 18 entries, 123,370 elements, 481.9 KiB\n", text)
    assert.matches("\n  conv1.weight +float32 +%[6, 1, 5, 5%] +600 B\n  conv2.weight", text)
    assert.matches("\n  learning_rate +float32 +%[%] +4 B\n", text)
  end)

  it("keeps tensors as they print, small tables on one line, others nested", function()
    local t = spore.tensor({ { 1, 2 }, { 3, 4 } })
    assert.equal(tostring(t), pretty.value(t))
    assert.equal("{ 2, 2 }", pretty.value({ 2, 2 }))
    assert.equal('{ a = 1, b = "x" }', pretty.value({ a = 1, b = "x" }))
    assert.equal('{\n  big = tensor<float32 [100, 100] cpu>,\n  n = 1\n}', pretty.value({ n = 1, big = spore.zeros({ 100, 100 }) }))
    local cyc = {}
    cyc.self = cyc
    assert.equal("{\n  self = <cycle>\n}", pretty.value(cyc))
    assert.is_false(pretty.is_dict({ a = spore.zeros(1), b = 3 }))
    assert.equal("1,234,567", pretty.commas(1234567))
    assert.matches("\n  %.%.%. and 44 more %(45 total%)$", pretty.dict(require("spore.ckpt").dict((function()
      local l = {}
      for i = 1, 45 do l[i] = { "p" .. i, spore.zeros(1) } end
      return l
    end)()), { max_rows = 1 }))
    assert.has_error(function() pretty.dict({ a = spore.zeros(1) }, { max_row = 3 }) end,
      "spore.pretty.dict: unknown option 'max_row' (did you mean 'max_rows'?)")
    assert.has_error(function() repl.new({ histroy = "x" }) end,
      "spore.repl.new: unknown option 'histroy' (did you mean 'history'?)")
  end)
end)

describe("REPL session", function()
  it("evaluates, keeps state, continues multi-line input, prints several values", function()
    local s, out = session()
    assert.equal("ok", s:feed("x = 42"))
    assert.equal("", out())
    assert.equal("ok", s:feed("x, 'a', nil"))
    assert.equal('42\t"a"\tnil\n', out())
    assert.equal("more", s:feed("for i = 1, 3 do"))
    assert.equal("ok", s:feed("x = x + i end"))
    s:feed("x")
    assert.equal("48\n", out())
  end)

  it("reports an error with a traceback without the REPL's frames, and goes on", function()
    local s, out = session()
    s:feed("nosuch.field")
    assert.equal("error: stdin:1: attempt to index global 'nosuch' (a nil value)\n", out())
    s:feed("function f() local t = nil; return t.x end")
    s:feed("function g() return (f()) end")
    s:feed("g()")
    local text = out()
    assert.matches("^error: stdin:1: attempt to index local 't' %(a nil value%)\nstack traceback:\n", text)
    assert.matches("in function 'f'", text, 1, true)
    assert.matches("in function 'g'", text, 1, true)
    assert.matches("stdin:1: in main chunk\n$", text)
    assert.is_nil(text:find("repl.lua", 1, true), text)
    assert.is_nil(text:find("xpcall", 1, true), text)
    s:feed("error({ code = 7 })")
    assert.equal("error: { code = 7 }\n", out())
    s:feed("1 +* 2")
    assert.matches("^error: stdin:1: unexpected symbol", out())
    s:feed("1 + 1")
    assert.equal("2\n", out())
  end)

  it("an interrupt stops a loop the JIT would compile, state intact", function()
    local s, out = session()
    s:feed("x = 42")
    local t0 = os.clock()
    s:feed("for i = 1, 1e12 do if i == 300000 then interrupt() end end")
    assert.equal("interrupted (Ctrl-C)\n", out())
    assert.is_true(os.clock() - t0 < 5)
    -- a function defined by an earlier chunk runs without the JIT too
    s:feed("function spin(n) local i = 0 while true do i = i + 1 if i == n then interrupt() end end end")
    s:feed("spin(300000)")
    local text = out()
    assert.matches("^interrupted %(Ctrl%-C%)\nstack traceback:\n%s+stdin:1: in function 'spin'", text)
    s:feed("x")
    assert.equal("42\n", out())
  end)

  it("an inner pcall cannot swallow the interrupt", function()
    local s, out = session()
    s:feed("n = 0")
    s:feed("while true do n = n + 1; pcall(function() local j = 0 while true do j = j + 1 if j == 20000 then interrupt() end end end) end")
    assert.equal("interrupted (Ctrl-C)\n", out())
    s:feed("n")
    assert.equal("1\n", out())
  end)

  it(":time prints the values and the wall time", function()
    local ticks = { 10, 10.25 }
    local s, out = session({ clock = function() return table.remove(ticks, 1) end })
    s:feed(":time 6 * 7")
    assert.equal("42\nwall time: 250.00 ms\n", out())
    s, out = session()
    s:feed(":time x = 1")
    assert.matches("^wall time: [%d.]+ [um]?s\n$", out())
  end)

  it(":help NAME prints the doc comment above the function's definition", function()
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/documented.lua", "wb"))
    f:write("local M = {}\n-- not part of the doc\n\n--- Add two numbers.\n-- Returns their sum.\nfunction M.add(a, b) return a + b end\n",
      "function M.bare() end\n--------------------------- section\nfunction M.after_rule() end\nreturn M\n")
    f:close()
    local s, out = session()
    s.env.doc = dofile(dir .. "/documented.lua")
    s:feed(":help doc.add")
    assert.equal("function M.add(a, b) return a + b end    -- " .. dir .. "/documented.lua:6\nAdd two numbers.\nReturns their sum.\n", out())
    s:feed(":help doc.bare")
    assert.matches("^function M.bare%(%) end    %-%- .-:7\n%(no doc comment%)\n$", out())
    s:feed(":help doc.after_rule")
    assert.matches("%(no doc comment%)\n$", out())
    s:feed(":help print")
    assert.equal("print: a C function (no doc comment)\n", out())
    s:feed(":help spore.load_checkpoint")
    assert.matches("^function M.load_checkpoint%(path, opts, %.%.%.%)    %-%- lua/spore/ckpt/init.lua:%d+\nload_checkpoint%(path, opts%) %-> dict%[, report%]\n", out())
    s:feed(":help spore.nn.Conv2d")
    assert.matches("^spore.nn.Conv2d    %-%- module spore.nn.conv, .*\nspore.nn.Conv2d%(in, out, kernel_size", out())
    s:feed(":help nosuch")
    assert.equal("nosuch is nil\n", out())
    s:feed(":help")
    assert.matches("^spore REPL", out())
    os.remove(dir .. "/documented.lua")
    os.remove(dir)
  end)

  it("appends each line to the history file; the file is read back and cut when long", function()
    local dir = H.tmpdir()
    local path = dir .. "/hist"
    local s = session({ history = path })
    s:feed("x = 1")
    s:feed("x = 1") -- the same line twice: kept once
    s:feed("   ")
    s:feed("x + 1")
    s:feed("nosuch()") -- errors are history too
    assert.same({ "x = 1", "x + 1", "nosuch()" }, repl.history_load(path))
    local keep = repl.HISTORY_KEEP
    repl.HISTORY_KEEP = 4
    s:feed("a = 1")
    s:feed("b = 2")
    assert.same({ "a = 1", "b = 2" }, repl.history_load(path)) -- 5 lines > 4: the newest 2
    assert.same({ "a = 1", "b = 2" }, repl.history_load(path))
    repl.HISTORY_KEEP = keep
    assert.same({}, repl.history_load(dir .. "/none"))
    -- an unwritable file: one warning, the session goes on
    local s2, out2 = session({ history = dir .. "/no/such/dir/hist" })
    s2:feed("1")
    assert.matches("^warning: history not kept: ", out2())
    s2:feed("2")
    assert.equal("2\n", out2())
    os.remove(path)
    os.remove(dir)
  end)

  it("the history file is $SPORE_HISTORY, else ~/.spore_history", function()
    local out = H.run([[SPORE_HISTORY=/tmp/x.hist luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' ]]
      .. [[-e 'io.write(require("spore.repl").history_path())']])
    assert.equal("/tmp/x.hist", out)
    out = H.run([[env -u SPORE_HISTORY HOME=/home/u luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' ]]
      .. [[-e 'io.write(require("spore.repl").history_path())']])
    assert.equal("/home/u/.spore_history", out)
  end)
end)

describe("scripts/repl.lua", function()
  it("--help prints usage and exits 0 without starting the REPL; a typo exits 2 with a suggestion", function()
    local out, rc = H.run("luajit scripts/repl.lua --help < /dev/null 2>&1")
    assert.equal(0, rc)
    assert.matches("^Usage: repl.lua", out)
    assert.is_nil(out:find("spore>", 1, true))
    out, rc = H.run("luajit scripts/repl.lua --histroy x < /dev/null 2>&1")
    assert.equal(2, rc)
    assert.matches("Did you mean '--history'?", out, 1, true)
  end)

  it("prints exactly the README's sample session (input fed through a pipe, on the cpu)", function()
    local readme = H.read_file("README.md")
    local sample = readme:match("## A first REPL session\n\n```\n%$ luajit scripts/repl.lua\n(.-)```")
    assert.is_truthy(sample, "README has no REPL sample")
    local inputs, expected = {}, sample:gsub("spore> ([^\n]*)\n", function(line)
      return "spore> ", nil
    end)
    for line in sample:gmatch("spore> ([^\n]*)\n") do inputs[#inputs + 1] = line end
    expected = expected .. "spore> " -- the prompt that reads the end of input
    assert.is_true(#inputs >= 8)
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/in.txt", "wb"))
    f:write(table.concat(inputs, "\n") .. "\n")
    f:close()
    local out, rc = H.run("cd " .. dir .. " && SPORE_DEVICE=cpu SPORE_NO_READLINE=1 luajit " .. H.root .. "/scripts/repl.lua < in.txt 2>&1")
    assert.equal(0, rc)
    assert.equal(expected, out:gsub("\n$", ""))
    os.remove(dir .. "/lenet.ckpt")
    os.remove(dir .. "/in.txt")
    os.remove(dir)
  end)
end)
