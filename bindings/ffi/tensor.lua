--- bindings/ffi/tensor.lua — the Tensor class over `sp_tensor *` handles.
-- A Tensor is a Lua table { h = <sp_tensor* cdata> } so that `free()` is
-- idempotent and a freed tensor raises a clear error instead of crashing.
-- Positions you pass (t[i], t:get{i, j}, select/narrow start, dim arguments) are
-- 1-based as in Lua/Torch7; values that ARE indices stored in tensors (labels,
-- argmax/argmin/topk results) are 0-based as in MindSpore (README "Indexing").
--
-- Memory: the LuaJIT GC does not see engine memory. Each handle carries an
-- ffi.gc finaliser (the safety net) and every allocation goes through track(),
-- which runs a full collection when the engine's live bytes pass a soft limit
-- and raises the limit when that frees little (torch7's heap tracking).
local lib = require("ffi.lib")
local ffi, C, check = lib.ffi, lib.C, lib.check

local M = {}
local Tensor = {}
Tensor.__name = "Tensor"
M.Tensor = Tensor

local MAXD = 8
local i64buf = ffi.typeof("int64_t[8]")
local outp = ffi.typeof("sp_tensor*[1]")
local dblbuf = ffi.typeof("double[1]")

---------------------------------------------------------------- dtypes
local DT_NAMES = {}
for d = 0, C.SP_NUM_DTYPES - 1 do DT_NAMES[d] = ffi.string(C.sp_dtype_name(d)) end
M.dtypes = DT_NAMES
local CTYPE = {} -- dtype name -> C element type, from the engine's dtype table
for d = 0, C.SP_NUM_DTYPES - 1 do CTYPE[DT_NAMES[d]] = ffi.string(C.sp_dtype_ctype(d)) end

--- dtype code from a name (or code); raises on an unknown name.
function M.dtype_code(dt)
  if dt == nil then return C.SP_FLOAT32 end
  if type(dt) == "number" then
    if DT_NAMES[dt] then return dt end
    error("unknown dtype code " .. tostring(dt), 3)
  end
  local d = C.sp_dtype_from_name(tostring(dt))
  if d < 0 then
    error("unknown dtype '" .. tostring(dt) .. "' (expected one of float32, float16, bfloat16, "
      .. "float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool)", 3)
  end
  return d
end
local dtype_code = M.dtype_code

---------------------------------------------------------------- heap tracking
local policy = { soft = tonumber(os.getenv("SPORE_GC_SOFT_MB") or "") or 256, collections = 0 }
policy.soft = policy.soft * 1024 * 1024
M.gc_policy = policy

local function track()
  local live = tonumber(C.sp_mem_live_bytes())
  if live > policy.soft then
    collectgarbage("collect")
    policy.collections = policy.collections + 1
    live = tonumber(C.sp_mem_live_bytes())
    -- the working set really is this big: raise the limit instead of thrashing
    if live > policy.soft * 0.5 then policy.soft = live * 2 end
  end
end
M.track = track

--- Wrap an owned handle (takes ownership). Used by every binding that returns tensors.
function M.wrap(h)
  if h == nil then error("internal: NULL tensor handle", 2) end
  track()
  return setmetatable({ h = ffi.gc(h, C.sp_tensor_free) }, Tensor)
end
local wrap = M.wrap

local function H(t)
  if type(t) ~= "table" then error("expected a tensor, got " .. type(t), 3) end
  local h = rawget(t, "h")
  if h == nil then error("tensor was freed", 3) end
  return h
end
M.handle = H

local function is_tensor(x) return type(x) == "table" and getmetatable(x) == Tensor end
M.is_tensor = is_tensor

local function shape_buf(shape)
  if type(shape) ~= "table" then error("shape must be a table of sizes, got " .. type(shape), 3) end
  local n = #shape
  if n > MAXD then error("tensor rank " .. n .. " exceeds " .. MAXD, 3) end
  local b = i64buf()
  for i = 1, n do
    local d = shape[i]
    if type(d) ~= "number" or d ~= math.floor(d) then
      error("shape entry " .. i .. " is not an integer: " .. tostring(d), 3)
    end
    b[i - 1] = d
  end
  return b, n
end

local function shape_of(...)
  local a = ...
  if type(a) == "table" then return a end
  return { ... }
end

---------------------------------------------------------------- constructors
-- Sizes as varargs (torch's `zeros(2, 3)`): the leading numbers are the shape, what follows
-- (a dtype, ...) is returned after it. A table shape is returned as is with the rest.
local function dims(shape, ...)
  if type(shape) ~= "number" then return shape, ... end
  local all, s = { shape, ... }, { shape }
  local i = 2
  while type(all[i]) == "number" do s[i] = all[i]; i = i + 1 end
  return s, unpack(all, i, select("#", ...) + 1)
end

--- New zero-filled tensor. `M.zeros({2, 3}, "float64")`, `M.zeros(2, 3)` or `M.zeros(2, 3, "float64")`.
function M.zeros(...)
  local shape, dtype = dims(...)
  local b, n = shape_buf(shape)
  local o = outp()
  check(C.sp_tensor_new(o, dtype_code(dtype), n, b), "zeros")
  return wrap(o[0])
end

--- New tensor with undefined contents (cheaper than zeros for buffers), on device
-- (default "cpu").
function M.empty(...)
  local shape, dtype, device = dims(...)
  local b, n = shape_buf(shape)
  local o = outp()
  check(C.sp_tensor_empty_on(o, dtype_code(dtype), n, b, M.device_code(device)), "empty")
  return wrap(o[0])
end

--- empty_channels_last({N, C, H, W}[, dtype[, device]]): a 4-D tensor laid out channels-last
-- (NHWC in memory, as torch.channels_last); the eval chains' activations under oneDNN.
function M.empty_channels_last(shape, dtype, device)
  if type(shape) ~= "table" or #shape ~= 4 then error("empty_channels_last: expected a 4-D shape {N, C, H, W}", 2) end
  local b = shape_buf(shape)
  local o = outp()
  check(C.sp_tensor_empty_channels_last_on(o, dtype_code(dtype), b, M.device_code(device)), "empty_channels_last")
  return wrap(o[0])
end

function M.full(shape, value, dtype)
  local t = M.empty(shape, dtype)
  check(C.sp_fill(t.h, value))
  return t
end
--- ones({2, 3}, dtype) or ones(2, 3[, dtype]).
function M.ones(...)
  local shape, dtype = dims(...)
  return M.full(shape, 1, dtype)
end

--- Copy nbytes from a pointer into a new tensor.
function M.from_pointer(ptr, nbytes, shape, dtype)
  local b, n = shape_buf(shape)
  local o = outp()
  check(C.sp_tensor_from_data(o, dtype_code(dtype), n, b, ptr, nbytes), "from_pointer")
  return wrap(o[0])
end

--- New tensor from (nested) Lua tables of numbers or booleans; shape inferred.
function M.from_table(data, dtype)
  if type(data) == "number" or type(data) == "boolean" then
    local t = M.empty({}, dtype)
    check(C.sp_fill(t.h, data == true and 1 or data == false and 0 or data))
    return t
  end
  if type(data) ~= "table" then error("tensor(): expected a number or a nested table, got " .. type(data), 2) end
  local shape, node = {}, data
  while type(node) == "table" do
    shape[#shape + 1] = #node
    node = node[1]
  end
  local flat, n = {}, 0
  local function walk(x, depth, path)
    if depth > #shape then
      if type(x) == "boolean" then x = x and 1 or 0 end
      if type(x) ~= "number" then error("tensor(): element at " .. path .. " is " .. type(x) .. ", expected a number", 4) end
      n = n + 1; flat[n] = x
      return
    end
    if type(x) ~= "table" or #x ~= shape[depth] then
      error("tensor(): ragged nested table at " .. path .. " (expected " .. shape[depth] .. " entries)", 4)
    end
    for i = 1, #x do walk(x[i], depth + 1, path .. "[" .. i .. "]") end
  end
  walk(data, 1, "")
  local t = M.empty(shape, dtype)
  if n > 0 then
    local buf = ffi.new("double[?]", n)
    for i = 1, n do buf[i - 1] = flat[i] end
    check(C.sp_tensor_from_doubles(t.h, buf, n))
  end
  return t
end

--- arange(stop) | arange(start, stop[, step[, dtype]]): [start, stop).
function M.arange(a, b, step, dtype)
  if b == nil then a, b = 0, a end
  step = step or 1
  if step == 0 then error("arange: step must be non-zero", 2) end
  local n = math.max(0, math.ceil((b - a) / step))
  local t = M.empty({ n }, dtype)
  check(C.sp_arange(t.h, a, step))
  return t
end

---------------------------------------------------------------- random
local rng = ffi.new("uint64_t[1]", 5489)
--- Seed the global generator (every random initialiser draws from it).
function M.manual_seed(s) rng[0] = s end
function M.rng_state() return rng end
--- A private generator state (for a dataset's shuffles and augmentations), seeded.
function M.new_rng(seed) return ffi.new("uint64_t[1]", seed or 0) end
--- x rounded to float32 (as a Lua number).
function M.to_float32(x) return tonumber(ffi.new("float", x)) end
--- Uniform [lo, hi): rand({2, 3}[, lo, hi, dtype]) or rand(2, 3[, dtype]) (torch's form).
function M.rand(...)
  local shape, lo, hi, dtype = dims(...)
  if type(...) == "number" then lo, hi, dtype = nil, nil, lo end
  local t = M.empty(shape, dtype)
  check(C.sp_rand_uniform(t.h, lo or 0, hi or 1, rng))
  return t
end
--- Normal(mean, std): randn({2, 3}[, mean, std, dtype]) or randn(2, 3[, dtype]) (torch's form).
function M.randn(...)
  local shape, mean, std, dtype = dims(...)
  if type(...) == "number" then mean, std, dtype = nil, nil, mean end
  local t = M.empty(shape, dtype)
  check(C.sp_rand_normal(t.h, mean or 0, std or 1, rng))
  return t
end

---------------------------------------------------------------- accessors
function Tensor:dim() return C.sp_tensor_ndim(H(self)) end
Tensor.ndim = Tensor.dim
--- Shape as a Lua table ({} for a scalar).
-- (one C call into a reused buffer: every module forward asks for its input's shape)
-- The table is made at its final size (table.new): filled from empty it was resized on the
-- 1st, 2nd and 3rd element, most of the cost of a call (LeNet5's batch-1 forward: 16 % of it).
local shape_out = ffi.new("int64_t[8]") -- SP_MAX_DIMS
local tnew = require("table.new")
function Tensor:shape()
  local nd = C.sp_tensor_shape(H(self), shape_out)
  local s = tnew(nd, 0)
  for i = 0, nd - 1 do s[i + 1] = tonumber(shape_out[i]) end
  return s
end
--- size() = shape table, size(d) = one dimension (1-based, negative from the end).
function Tensor:size(d)
  if d == nil then return self:shape() end
  local h = H(self)
  local nd = C.sp_tensor_ndim(h)
  local d0 = d
  if d < 0 then d = nd + d + 1 end
  if d < 1 or d > nd then error("dimension " .. d0 .. " is out of range for a " .. nd .. "-d tensor (dimensions are 1-based)", 2) end
  return tonumber(C.sp_tensor_dim(h, d - 1))
end
function Tensor:stride()
  local h = H(self)
  local s = {}
  for i = 0, C.sp_tensor_ndim(h) - 1 do s[i + 1] = tonumber(C.sp_tensor_stride(h, i)) end
  return s
end
function Tensor:numel() return tonumber(C.sp_tensor_numel(H(self))) end
function Tensor:nbytes() return tonumber(C.sp_tensor_nbytes(H(self))) end
function Tensor:dtype() return DT_NAMES[C.sp_tensor_dtype(H(self))] end
function Tensor:is_contiguous() return C.sp_tensor_is_contiguous(H(self)) == 1 end
--- true when the tensor is 4-D and channels-last (NHWC in memory; T.empty_channels_last)
function Tensor:is_channels_last() return C.sp_tensor_is_channels_last(H(self)) == 1 end
function Tensor:storage_refcount() return C.sp_tensor_storage_refcount(H(self)) end
function Tensor:shares_storage(o) return C.sp_tensor_shares_storage(H(self), H(o)) == 1 end
--- Typed pointer to the first element (e.g. float* for float32). Borrowed:
-- keep the tensor alive while using it.
function Tensor:ptr()
  local p = C.sp_tensor_data(H(self))
  if p == nil then error(ffi.string(C.sp_last_error()), 2) end
  return ffi.cast(CTYPE[self:dtype()] .. "*", p)
end
--- The raw handle (for bindings that call the engine).
function Tensor:handle() return H(self) end

--- Release the engine memory now (idempotent). The tensor is unusable afterwards.
function Tensor:free()
  local h = rawget(self, "h")
  if h ~= nil then
    ffi.gc(h, nil)
    C.sp_tensor_free(h)
    rawset(self, "h", nil)
  end
end

--- For C hosts: wrap an alias of a borrowed handle (the host keeps its own).
function Tensor.__wrap_alias(p)
  local o = outp()
  check(C.sp_tensor_alias(o, p))
  return wrap(o[0])
end
--- For C hosts: the handle's address as a number (the host aliases it at once).
function Tensor.__host_handle(t)
  if not is_tensor(t) then error("not a tensor", 2) end
  return tonumber(ffi.cast("intptr_t", H(t)))
end

---------------------------------------------------------------- element access
local function index_buf(self, idx)
  local h = H(self)
  local nd = C.sp_tensor_ndim(h)
  if #idx ~= nd then error("expected " .. nd .. " indices, got " .. #idx, 3) end
  local b = i64buf()
  for i = 1, nd do
    local v = idx[i]
    if type(v) ~= "number" then error("index " .. i .. " is not a number", 3) end
    local size = tonumber(C.sp_tensor_dim(h, i - 1))
    if v < 0 then v = size + v + 1 end
    if v < 1 or v > size or v ~= math.floor(v) then
      error("index " .. tostring(idx[i]) .. " is out of range for dimension " .. i .. " of size " .. size
        .. " (positions are 1-based)", 3)
    end
    b[i - 1] = v - 1
  end
  return h, b
end

--- t:get{i, j} (1-based) → number.
function Tensor:get(idx)
  if type(idx) == "number" then idx = { idx } end
  local h, b = index_buf(self, idx)
  local v = dblbuf()
  check(C.sp_tensor_get(h, b, v))
  return v[0]
end
--- t:set({i, j}, value).
function Tensor:set(idx, value)
  if type(idx) == "number" then idx = { idx } end
  local h, b = index_buf(self, idx)
  check(C.sp_tensor_set(h, b, value))
  return self
end
--- The single value of a one-element tensor.
function Tensor:item()
  local n = self:numel()
  if n ~= 1 then error("item(): tensor has " .. n .. " elements, expected 1", 2) end
  local v = ffi.new("double[1]")
  check(C.sp_tensor_to_doubles(H(self), v, 1))
  return v[0]
end

--- All values in row-major order as a flat Lua array.
function Tensor:flat()
  local n = self:numel()
  local buf = ffi.new("double[?]", math.max(n, 1))
  check(C.sp_tensor_to_doubles(H(self), buf, n))
  local out = {}
  for i = 1, n do out[i] = buf[i - 1] end
  return out
end

--- Nested Lua tables (a number for a scalar).
function Tensor:totable()
  local shape, flat = self:shape(), self:flat()
  if #shape == 0 then return flat[1] end
  local pos = 0
  local function build(d)
    local t = {}
    for i = 1, shape[d] do
      if d == #shape then pos = pos + 1; t[i] = flat[pos] else t[i] = build(d + 1) end
    end
    return t
  end
  return build(1)
end

---------------------------------------------------------------- views
local function view_call(fn, ...)
  local o = outp()
  check(fn(o, ...))
  return wrap(o[0])
end

local function norm_dim(self, d, extra)
  local nd = self:dim() + (extra or 0)
  if type(d) ~= "number" then error("dimension must be a number", 3) end
  local d0 = d
  if d < 0 then d = nd + d + 1 end
  if d < 1 or d > nd then
    error("dimension " .. d0 .. " is out of range for a " .. self:dim() .. "-d tensor (dimensions are 1-based)", 3)
  end
  return d - 1
end

--- View with a new shape (one entry may be -1). Non-contiguous tensors are copied first.
function Tensor:reshape(...)
  local shape = shape_of(...)
  local src = self
  if not self:is_contiguous() then src = self:contiguous() end
  local b, n = shape_buf(shape)
  return view_call(C.sp_tensor_reshape, H(src), n, b)
end
--- Like reshape but never copies: errors on a non-contiguous tensor.
function Tensor:view(...)
  local b, n = shape_buf(shape_of(...))
  return view_call(C.sp_tensor_reshape, H(self), n, b)
end
function Tensor:transpose(d0, d1)
  return view_call(C.sp_tensor_transpose, H(self), norm_dim(self, d0), norm_dim(self, d1))
end
function Tensor:t()
  if self:dim() ~= 2 then error("t(): expected a 2-d tensor, got " .. self:dim() .. "-d", 2) end
  return self:transpose(1, 2)
end
--- Drop dimension dim at index i (1-based).
function Tensor:select(dim, i)
  local d = norm_dim(self, dim)
  local size = self:size(d + 1)
  if type(i) ~= "number" then error("select: index must be a number", 2) end
  local i0 = i
  if i < 0 then i = size + i + 1 end
  if i < 1 or i > size or i ~= math.floor(i) then
    error("select: index " .. i0 .. " is out of range for dimension " .. (d + 1) .. " of size " .. size
      .. " (positions are 1-based)", 2)
  end
  return view_call(C.sp_tensor_select, H(self), d, i - 1)
end
--- Elements start..start+len-1 (1-based) along dim.
function Tensor:narrow(dim, start, len)
  local d = norm_dim(self, dim)
  local size = self:size(d + 1)
  if type(start) ~= "number" or type(len) ~= "number" then error("narrow: start and length must be numbers", 2) end
  if start < 1 or start ~= math.floor(start) or len < 0 or len ~= math.floor(len) or start + len - 1 > size then
    error("narrow: start " .. start .. " and length " .. len .. " do not fit dimension " .. (d + 1) .. " of size "
      .. size .. " (start is 1-based; need 1 <= start and start + length - 1 <= size)", 2)
  end
  return view_call(C.sp_tensor_narrow, H(self), d, start - 1, len)
end
function Tensor:contiguous() return view_call(C.sp_tensor_contiguous, H(self)) end
function Tensor:alias() return view_call(C.sp_tensor_alias, H(self)) end
function Tensor:flatten() return self:reshape({ self:numel() }) end
--- Resize in place to shape (a table), keeping the first elements (row-major); new
-- elements are undefined. Raises when views share this tensor's storage.
function Tensor:resize_(shape)
  local b, n = shape_buf(shape)
  check(C.sp_tensor_resize(H(self), n, b), "resize_")
  return self
end
--- resize_ that reports instead of raising: true when resized, false (nothing changed)
-- when views share the storage.
function Tensor:try_resize_(shape)
  local b, n = shape_buf(shape)
  return C.sp_tensor_resize(H(self), n, b) == 0
end

---------------------------------------------------------------- copies and casts
--- A contiguous copy, optionally converted to dtype.
function Tensor:clone(dtype)
  local h = H(self)
  return view_call(C.sp_tensor_clone, h, dtype and dtype_code(dtype) or C.sp_tensor_dtype(h))
end
---------------------------------------------------------------- devices
--- Device code from a name ("cpu", "sim", "cuda", "cuda:1"); raises on a bad name.
function M.device_code(dev)
  if dev == nil then return C.SP_DEVICE_CPU end
  local d = C.sp_device_parse(tostring(dev))
  if d < 0 then error(ffi.string(C.sp_last_error()), 3) end
  if C.sp_device_available(d) == 0 then error(ffi.string(C.sp_last_error()), 3) end
  return d
end
local function is_device_name(x)
  return type(x) == "string" and (x == "cpu" or x == "sim" or x:match("^cuda") ~= nil)
end
M.is_device_name = is_device_name
--- "cpu", "sim", "cuda:0"...
-- (names cached by device index: every module forward asks, and the string was rebuilt each time)
local device_names = {}
function Tensor:device()
  local d = C.sp_tensor_device(H(self))
  local n = device_names[d]
  if not n then n = ffi.string(C.sp_device_name(d)); device_names[d] = n end
  return n
end
--- true when the shape equals the table shape (no table built: the modules' buffer checks)
-- (one C call for all the dimensions: a call per dimension was 12 % of LeNet5's batch-1 forward)
function Tensor:has_shape(shape)
  local nd = C.sp_tensor_shape(H(self), shape_out)
  if nd ~= #shape then return false end
  for i = 1, nd do if tonumber(shape_out[i - 1]) ~= shape[i] then return false end end
  return true
end
--- t:to("sim") / t:to("cpu"): a copy on that device (self when already there);
-- t:to("float64"): a converted copy (self when the dtype already matches);
-- t:to("sim", "float64") (torch's to(device, dtype)): both. Anything else is an error.
function Tensor:to(arg, arg2, ...)
  if arg2 ~= nil or select("#", ...) > 0 then
    if select("#", ...) > 0 or type(arg2) ~= "string" or type(arg) ~= "string"
        or is_device_name(arg) == is_device_name(arg2) then
      error("to: takes a device name, a dtype name, or one of each (t:to('sim', 'float64')); got "
        .. type(arg) .. ", " .. type(arg2) .. (select("#", ...) > 0 and " and more" or ""), 2)
    end
    return self:to(arg):to(arg2)
  end
  if is_device_name(arg) then
    local d = M.device_code(arg)
    if d == C.sp_tensor_device(H(self)) then return self end
    local o = outp()
    check(C.sp_tensor_to_device(o, H(self), d), "to")
    return wrap(o[0])
  end
  if dtype_code(arg) == C.sp_tensor_dtype(H(self)) then return self end
  return self:clone(arg)
end
for _, n in ipairs({ "float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool" }) do
  Tensor[n] = function(self) return self:to(n) end
end
Tensor.float, Tensor.double, Tensor.long, Tensor.int = Tensor.float32, Tensor.float64, Tensor.int64, Tensor.int32
--- Copy src's values (converting dtype) into self, in place.
function Tensor:copy_(src)
  check(C.sp_tensor_copy(H(self), H(src)), "copy_")
  return self
end
function Tensor:fill_(v) check(C.sp_fill(H(self), v)); return self end
function Tensor:zero_() return self:fill_(0) end
function Tensor:uniform_(lo, hi) check(C.sp_rand_uniform(H(self), lo or 0, hi or 1, rng)); return self end
function Tensor:normal_(mean, std) check(C.sp_rand_normal(H(self), mean or 0, std or 1, rng)); return self end
--- Truncated normal in [mean-2std, mean+2std] (MindSpore's TruncatedNormal), in place.
function Tensor:trunc_normal_(mean, std) check(C.sp_rand_trunc_normal(H(self), mean or 0, std or 1, rng)); return self end

---------------------------------------------------------------- arithmetic
local OPS = { add = C.SP_OP_ADD, sub = C.SP_OP_SUB, mul = C.SP_OP_MUL, div = C.SP_OP_DIV,
  maximum = C.SP_OP_MAX, minimum = C.SP_OP_MIN, pow = C.SP_OP_POW }

local function result_dtype(a, b)
  local da, db = a:dtype(), b:dtype()
  if da == db then return da end
  local fa, fb = C.sp_dtype_is_float(dtype_code(da)) == 1, C.sp_dtype_is_float(dtype_code(db)) == 1
  if fa and not fb then return da end
  if fb and not fa then return db end
  if da == "float64" or db == "float64" then return "float64" end
  if fa then return "float32" end
  return "int64"
end

local function broadcast_shape(a, b)
  local sa, sb = a:shape(), b:shape()
  local n = math.max(#sa, #sb)
  local out = {}
  for i = 1, n do
    local x, y = sa[i - (n - #sa)] or 1, sb[i - (n - #sb)] or 1
    if x ~= y and x ~= 1 and y ~= 1 then
      error("shapes [" .. table.concat(sa, ", ") .. "] and [" .. table.concat(sb, ", ")
        .. "] cannot be broadcast together", 4)
    end
    out[i] = x == 1 and y or x
  end
  return out
end

local function binary(a, b, opname, inplace)
  local op = OPS[opname]
  if is_tensor(a) and is_tensor(b) then
    local out = inplace and a or M.empty(broadcast_shape(a, b), result_dtype(a, b), a:device())
    check(C.sp_binary(H(out), H(a), H(b), op), opname)
    return out
  elseif is_tensor(a) and type(b) == "number" then
    local out = inplace and a or M.empty(a:shape(), a:dtype(), a:device())
    check(C.sp_binary_scalar(H(out), H(a), b, op, 0), opname)
    return out
  elseif type(a) == "number" and is_tensor(b) then
    local out = M.empty(b:shape(), b:dtype(), b:device())
    check(C.sp_binary_scalar(H(out), H(b), a, op, 1), opname)
    return out
  end
  error(opname .. ": expected tensors or numbers, got " .. type(a) .. " and " .. type(b), 3)
end

for name in pairs(OPS) do
  Tensor[name] = function(a, b) return binary(a, b, name) end
  Tensor[name .. "_"] = function(a, b) return binary(a, b, name, true) end
end
Tensor.__add = function(a, b) return binary(a, b, "add") end
Tensor.__sub = function(a, b) return binary(a, b, "sub") end
Tensor.__mul = function(a, b) return binary(a, b, "mul") end
Tensor.__div = function(a, b) return binary(a, b, "div") end
Tensor.__pow = function(a, b) return binary(a, b, "pow") end

local UN = { neg = C.SP_UN_NEG, abs = C.SP_UN_ABS, exp = C.SP_UN_EXP, log = C.SP_UN_LOG,
  sqrt = C.SP_UN_SQRT, tanh = C.SP_UN_TANH, sigmoid = C.SP_UN_SIGMOID, relu = C.SP_UN_RELU }
for name, op in pairs(UN) do
  Tensor[name] = function(self)
    local out = M.empty(self:shape(), self:dtype(), self:device())
    check(C.sp_unary(H(out), H(self), op), name)
    return out
  end
end
Tensor.__unm = function(a) return a:neg() end

--- Matrix product of 2-d float tensors: (M×K)·(K×N) → M×N.
function Tensor:matmul(b)
  if not is_tensor(b) then error("matmul: expected a tensor", 2) end
  if self:dim() ~= 2 or b:dim() ~= 2 then
    error("matmul: expected 2-d tensors, got " .. self:dim() .. "-d and " .. b:dim() .. "-d", 2)
  end
  local out = M.empty({ self:size(1), b:size(2) }, self:dtype(), self:device())
  check(C.sp_matmul(H(out), H(self), H(b), 0, 0, 1, 0), "matmul")
  return out
end

---------------------------------------------------------------- reductions
local RED = { sum = C.SP_RED_SUM, mean = C.SP_RED_MEAN, max = C.SP_RED_MAX, min = C.SP_RED_MIN,
  argmax = C.SP_RED_ARGMAX, argmin = C.SP_RED_ARGMIN }
for name, op in pairs(RED) do
  --- t:sum() → number; t:sum(dim[, keepdim]) → tensor (dim 1-based). argmax/argmin
  -- return 0-based indices (int64 tensor, or the 0-based flat index with no dim): they
  -- are values stored as data, like labels, so `logits:argmax(2)` equals class ids.
  Tensor[name] = function(self, dim, keepdim)
    local arg = (name == "argmax" or name == "argmin")
    if dim == nil then
      local v = dblbuf()
      check(C.sp_reduce_all(H(self), op, v), name)
      return v[0]
    end
    local d = norm_dim(self, dim)
    local shape = self:shape()
    if keepdim then shape[d + 1] = 1 else table.remove(shape, d + 1) end
    local out = M.empty(shape, arg and "int64" or (self:dtype():match("^float") and self:dtype() or "float64"),
      self:device())
    check(C.sp_reduce_dim(H(out), H(self), op, d, keepdim and 1 or 0), name)
    return out
  end
end

--- t:topk(k[, dim[, largest]]) → values, indices: the k largest (largest ~= false) or
-- smallest elements along dim (1-based, default the last), sorted; ties keep the lower
-- index first. indices is int64 and 0-based (values stored as data, like argmax).
function Tensor:topk(k, dim, largest)
  if type(k) ~= "number" or k ~= math.floor(k) then error("topk: k must be an integer, got " .. tostring(k), 2) end
  if self:dim() == 0 then error("topk: expected a tensor with at least 1 dimension, got a scalar", 2) end
  local d = norm_dim(self, dim or -1)
  local size = self:size(d + 1)
  if k < 0 or k > size then
    error("topk: k = " .. k .. " is out of range for dimension " .. (d + 1) .. " of size " .. size, 2)
  end
  local shape = self:shape()
  shape[d + 1] = k
  local dev = self:device()
  local values, indices = M.empty(shape, self:dtype(), dev), M.empty(shape, "int64", dev)
  check(C.sp_topk(H(values), H(indices), H(self), k, d, largest == false and 0 or 1))
  return values, indices
end

--- How many elements of a and b are equal (numpy broadcasting; NaN equals nothing).
function Tensor:count_equal(other)
  if not is_tensor(other) then error("count_equal: expected a tensor, got " .. type(other), 2) end
  local n = ffi.new("int64_t[1]")
  check(C.sp_count_equal(H(self), H(other), n))
  return tonumber(n[0])
end

---------------------------------------------------------------- indexing metamethods
Tensor.__index = function(self, k)
  if type(k) == "number" then
    local h = H(self)
    if C.sp_tensor_ndim(h) == 1 then return self:get({ k }) end
    return self:select(1, k)
  end
  return Tensor[k]
end
Tensor.__newindex = function(self, k, v)
  if type(k) == "number" then
    local h = H(self)
    if C.sp_tensor_ndim(h) == 1 then return self:set({ k }, v) end
    local row = self:select(1, k)
    if is_tensor(v) then row:copy_(v) else row:fill_(v) end
    return
  end
  rawset(self, k, v)
end
-- `#t`: the size of dimension 1, as torch's t:size(1) (0 for a scalar). LuaJIT (Lua 5.1
-- semantics, as Debian builds it) does not call __len for a table, and a spore tensor is a
-- table: there `#t` is the table's own length, 0; use t:size(1), t:numel() or t:shape().
-- A LuaJIT built with LUAJIT_ENABLE_LUA52COMPAT honours this.
Tensor.__len = function(self)
  if self:dim() == 0 then return 0 end
  return self:size(1)
end

return M
