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
    assert.matches("%-%-batch N%s+batch size %(default: 32%)", u)
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

---------------------------------------------------------------- the scripts, run as a user runs them
local H = spec_helper
local SCRIPTS = { "train", "eval", "finetune", "inspect", "convert", "demo" }
local function sh(cmd) return H.run(cmd) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function last_line(s) return s:match("([^\n]*)\n?$") end
local function listing(dir) return (sh("cd " .. q(dir) .. " && find . -printf '%p %s %T@\\n' | sort")) end

describe("every script follows the one CLI convention", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. q(tmp)) end)

  it("--help prints the usage, exits 0 and has no side effect (demo keeps its directory)", function()
    sh("mkdir -p " .. q(tmp .. "/out/demo") .. " && echo keep > " .. q(tmp .. "/out/demo/marker"))
    local before = listing(tmp)
    for _, s in ipairs(SCRIPTS) do
      for _, flag in ipairs({ "--help", "-h" }) do
        local out, rc = sh(("cd %s && SPORE_DEMO_OUT=%s luajit %s/scripts/%s.lua --out=x %s 2>&1"):format(q(tmp),
          q(tmp .. "/out/demo"), H.root, s, flag))
        assert.equal(0, rc, s .. ": " .. out)
        assert.matches("^usage: luajit scripts/" .. s .. "%.lua", out)
        assert.truthy(out:find("-h, --help", 1, true), s)
      end
    end
    assert.equal(before, listing(tmp))
  end)

  it("a typo exits 2 and names the nearest option; stdout stays empty", function()
    for _, s in ipairs(SCRIPTS) do
      local out, rc = sh(("cd %s && luajit %s/scripts/%s.lua --quite 2>&1 >%s/stdout"):format(q(tmp), H.root, s, q(tmp)))
      assert.equal(2, rc, s .. ": " .. out)
      assert.matches("^" .. s .. "%.lua: error: unknown option '%-%-quite'\ndid you mean '%-%-quiet'%?\nusage: ", out)
      assert.equal("", H.read_file(tmp .. "/stdout"), s)
    end
    -- a bad value names the option, whichever way it is written
    for _, a in ipairs({ "--batch=x", "--batch x" }) do
      local out, rc = sh("luajit scripts/train.lua " .. a .. " 2>&1 >/dev/null")
      assert.equal(2, rc, out)
      assert.matches("^train%.lua: error: %-%-batch expects an integer, got 'x'\n", out)
    end
    assert.is_nil(listing(tmp):find("./out", 1, true), "nothing written")
  end)

  it("inspect and convert end with one JSON line", function()
    local json = require("spore.json")
    local p = H.local_fixture("ms_small.ckpt")
    local out, rc = sh("luajit scripts/inspect.lua " .. p .. " 2>/dev/null")
    assert.equal(0, rc, out)
    local j = json.decode(last_line(out))
    assert.equal("ckpt", j.format); assert.equal(12, j.entries); assert.equal(p, j.file)
    assert.matches("conv%.weight", out) -- the listing comes before it
    out = sh("luajit scripts/inspect.lua --quiet " .. p .. " 2>/dev/null")
    assert.equal(1, select(2, out:gsub("\n", "")), "only the JSON line with --quiet")
    out, rc = sh(("luajit scripts/convert.lua %s %s/o.safetensors --rename=torch_to_mindspore --quiet 2>/dev/null"):format(p, tmp))
    assert.equal(0, rc, out)
    j = json.decode(last_line(out))
    assert.same({ input = p, output = tmp .. "/o.safetensors", format = "safetensors", tensors = 11, skipped = 1 }, j)
    assert.equal(1, select(2, out:gsub("\n", "")))
  end)

  it("eval, train and finetune end with one JSON line; train/finetune keep a run record", function()
    local json = require("spore.json")
    local mnist = H.fixture("mnist/t10k-labels-idx1-ubyte.gz") and H.fixtures_dir() .. "/mnist"
    local ck = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
    if not mnist or not ck then return pending("fixtures missing: mnist, mindspore LeNet (set SPORE_FIXTURES)") end
    -- eval gains --rename, --dec-key, --dec-mode (the readers' semantics)
    local out, rc = sh(("luajit scripts/eval.lua --ckpt=%s --data %s --limit=200 --rename torch_to_mindspore --quiet 2>&1")
      :format(ck, mnist))
    assert.equal(0, rc, out)
    local j = json.decode(last_line(out))
    assert.equal(200, j.samples); assert.is_true(j.accuracy > 0.9)
    -- --amp-level O2: bfloat16, within 0.005 of float32 on the same 200 images; O3 refused by name
    out, rc = sh(("luajit scripts/eval.lua --ckpt=%s --data %s --limit=200 --amp-level O2 --quiet 2>&1"):format(ck, mnist))
    assert.equal(0, rc, out)
    local j2 = json.decode(last_line(out))
    assert.equal(200, j2.samples); assert.is_true(math.abs(j2.accuracy - j.accuracy) <= 0.005, out)
    assert.is_true(j2.loss ~= j.loss, "O2 ran in bfloat16")
    out, rc = sh(("luajit scripts/eval.lua --ckpt=%s --data %s --limit=20 --amp-level O3 2>&1"):format(ck, mnist))
    assert.equal(1, rc); assert.matches("amp_level 'O3' is MindSpore's, but spore implements", out)
    local enc = H.local_fixture("ms_enc_cbc.ckpt")
    out, rc = sh(("luajit scripts/eval.lua --ckpt %s --data %s 2>&1"):format(enc, mnist))
    assert.equal(1, rc); assert.matches("encrypted %(AES%-CBC%): pass %-%-dec%-key", out)
    out, rc = sh(("luajit scripts/eval.lua --ckpt %s --data %s --dec-key 0123456789abcdef --dec-mode AES-CBC 2>&1")
      :format(enc, mnist))
    assert.equal(1, rc); assert.matches("holds none of the lenet5 parameters", out) -- decrypted, then refused
    -- train: stdout is the JSON line only; stderr (not a terminal) has no status line
    out, rc = sh(("luajit scripts/train.lua --dataset=mnist --data %s --steps 30 --log-every 10 --no-plot --out %s/t 2>%s/err")
      :format(mnist, tmp, tmp))
    assert.equal(0, rc, out .. H.read_file(tmp .. "/err"))
    assert.equal(1, select(2, out:gsub("\n", "")), out)
    j = json.decode(out)
    assert.equal(30, j.steps); assert.equal(tmp .. "/t/metrics.jsonl", j.metrics); assert.equal(json.null, j.plot)
    local err = H.read_file(tmp .. "/err")
    assert.is_nil(err:find("\r", 1, true)); assert.is_nil(err:find("ETA", 1, true))
    assert.matches("epoch 1/1: train loss [%d.]+, eval accuracy [%d.]+, eval loss [%d.]+", err)
    local recs = require("spore.runlog").read(j.metrics)
    assert.equal("run", recs[1].kind); assert.equal("train.lua", recs[1].script)
    local steps = {}
    for _, r in ipairs(recs) do if r.kind == "step" then steps[#steps + 1] = r.step end end
    assert.same({ 10, 20, 30 }, steps)
    assert.equal("epoch", recs[#recs - 1].kind); assert.equal(j.accuracy, recs[#recs - 1].eval.accuracy)
    assert.equal("end", recs[#recs].kind)
    assert.is_nil(io.open(tmp .. "/t/metrics.png"), "--no-plot")
    -- finetune, --quiet: nothing on stderr but the JSON on stdout
    out, rc = sh(("luajit scripts/finetune.lua --ckpt %s --dataset mnist --data=%s --new-head 10 --steps 20 --quiet --no-plot --out %s/f 2>%s/err")
      :format(ck, mnist, tmp, tmp))
    assert.equal(0, rc, out)
    assert.equal("", H.read_file(tmp .. "/err"))
    j = json.decode(out)
    assert.equal(20, j.global_step); assert.equal(1, #j.epochs); assert.equal(tmp .. "/f/metrics.jsonl", j.metrics)
  end)
end)

describe("train.lua on a terminal (pty, script -qec)", function()
  -- a tiny terminal: \r returns to column 0, ESC[K erases to the end, \n ends the line
  local function screen_lines(raw)
    local lines, cur, col = {}, {}, 1
    local i = 1
    while i <= #raw do
      local c = raw:sub(i, i)
      if raw:sub(i, i + 2) == "\27[K" then
        for k = col, #cur do cur[k] = nil end
        i = i + 3
      else
        if c == "\r" then col = 1
        elseif c == "\n" then lines[#lines + 1] = table.concat(cur); cur, col = {}, 1
        else cur[col] = c; col = col + 1 end
        i = i + 1
      end
    end
    if #cur > 0 then lines[#lines + 1] = table.concat(cur) end
    return lines
  end

  it("draws one status line that log lines never tear; writes metrics.jsonl and a PNG", function()
    local mnist = H.fixture("mnist/train-labels-idx1-ubyte.gz") and H.fixtures_dir() .. "/mnist"
    if not mnist then return pending("fixture missing: mnist (set SPORE_FIXTURES)") end
    if select(2, H.run("command -v script >/dev/null")) ~= 0 then return pending("script (util-linux) missing") end
    local tmp = H.tmpdir()
    local cmd = ("luajit scripts/train.lua --dataset mnist --data %s --steps 450 --epochs 2 --out %s"):format(mnist, tmp)
    local raw, rc = H.run(("script -qec %s /dev/null"):format(q(cmd)))
    assert.equal(0, rc, raw)
    assert.truthy(raw:find("\r\27[Kepoch 1/2 [", 1, true), "a status line was drawn") -- progress, ETA, img/s, loss
    assert.matches("ETA %d+:%d%d:%d%d  %d+ img/s  loss [%d.]+", raw)
    local lines, logs, torn = screen_lines(raw), 0, {}
    for _, l in ipairs(lines) do
      if l:find("ETA", 1, true) then torn[#torn + 1] = l end -- a status line left on screen, or one mixed with a log line
      if l:match("^epoch: %d+ step: %d+, loss is [%d.]+$") or l:match("^epoch %d/2: train loss ") then logs = logs + 1 end
    end
    assert.same({}, torn)
    assert.is_true(logs >= 5, raw) -- three loss lines (steps 200, 400, 600) and two epoch lines
    local j = require("spore.json").decode(lines[#lines])
    assert.equal(tmp .. "/metrics.png", j.plot)
    assert.equal("\137PNG", H.read_file(j.plot):sub(1, 4))
    assert.is_true(#require("spore.runlog").read(j.metrics) > 5)
    os.execute("rm -rf " .. q(tmp))
  end)
end)

describe("spore.runlog", function()
  local runlog = require("spore.runlog")
  local function fake_run(dir, opts)
    local rl = runlog.RunLog(dir, opts)
    local ctx = { epoch_num = 2, initial_epoch = 0, batch_num = 5, cur_epoch_num = 0, cur_step_num = 0, batch_size = 4,
      optimizer = { get_lr = function() return 0.5 end } }
    rl:on_train_begin(ctx)
    for e = 1, 2 do
      ctx.cur_epoch_num = e
      for _ = 1, 5 do
        ctx.cur_step_num = ctx.cur_step_num + 1
        ctx.net_outputs = 1 / ctx.cur_step_num
        rl:on_train_step_end(ctx)
      end
      rl:on_train_epoch_end(ctx)
    end
    rl:on_train_end(ctx)
    return rl
  end
  it("records steps every N, each epoch's eval, the end; NaN is null", function()
    local tmp = H.tmpdir()
    local n = 0
    local rl = fake_run(tmp, { every = 2, plot = false, eval = function()
      n = n + 1
      return { accuracy = n / 4, loss = n == 1 and 0 / 0 or 0.25 }
    end })
    local recs = runlog.read(rl.path)
    local kinds = {}
    for _, r in ipairs(recs) do kinds[#kinds + 1] = r.kind .. (r.step and (":" .. r.step) or "") end
    -- step 5 ends epoch 1 off the every-2 grid: its window is written before the epoch record
    assert.same({ "run", "step:2", "step:4", "step:5", "epoch:5", "step:6", "step:8", "step:10", "epoch:10", "end" }, kinds)
    assert.equal(0.5, recs[2].lr)
    assert.equal((1 + 1 / 2) / 2, recs[2].loss_mean)
    assert.equal(1 / 2, recs[2].loss)
    assert.equal(require("spore.json").null, recs[5].eval.loss)
    assert.equal(0.5, recs[9].eval.accuracy)
    assert.equal((1 / 6 + 1 / 7 + 1 / 8 + 1 / 9 + 1 / 10) / 5, recs[9].train_loss)
    os.execute("rm -rf " .. q(tmp))
  end)
  it("a missing gnuplot is one warning line, no plot, no error", function()
    local tmp = H.tmpdir()
    local warnings = {}
    local rl = fake_run(tmp, { gnuplot = "/nonexistent/gnuplot", warn = function(l) warnings[#warnings + 1] = l end })
    assert.is_nil(rl.plot_path)
    assert.equal(1, #warnings)
    assert.matches("^runlog: warning: no plot %(/nonexistent/gnuplot not found %(Debian: apt%-get install gnuplot%-nox%)%)", warnings[1])
    assert.equal(require("spore.json").null, runlog.read(rl.path)[#runlog.read(rl.path)].plot)
    local png, why = runlog.plot(rl.path, tmp .. "/x.png", "t", "/nonexistent/gnuplot")
    assert.is_nil(png); assert.matches("not found", why)
    os.execute("rm -rf " .. q(tmp))
  end)
  it("refuses unknown options by name", function()
    assert.has_error(function() runlog.RunLog("/tmp/x", { evry = 3 }) end, "RunLog: unknown option 'evry' (did you mean 'every'?)")
  end)
end)

describe("demo.lua end to end #slow", function()
  it("runs the four steps on Fashion-MNIST, ends listing the plots and with one JSON line", function()
    if not io.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") then
      return pending("Debian's dataset-fashion-mnist missing")
    end
    local tmp = H.tmpdir()
    local out, rc = H.run(("luajit scripts/demo.lua --steps 40 --out %s/demo 2>&1"):format(tmp))
    assert.equal(0, rc, out)
    local j = require("spore.json").decode(out:match("([^\n]*)\n?$"))
    -- train, resume, newhead; and step 5's ResNet run when `make demo-data` built its image folder
    assert.equal(j.resnet and 4 or 3, #j.plots)
    for _, p in ipairs(j.plots) do
      assert.equal("\137PNG", H.read_file(p):sub(1, 4))
      assert.truthy(out:find(p, 1, true))
    end
    assert.equal(j.train.accuracy, j.eval.accuracy)
    if j.resnet then assert.equal(j.resnet.accuracy, j.resnet_eval.accuracy) end
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
