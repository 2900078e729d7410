-- class_spec.lua — spore.class, the one class idiom of lua/spore: construction by call and
-- by new, method inheritance, metamethods passed to subclasses, an overridden new, __name.
local spore = require("spore")
local class = require("spore.class")

describe("spore.class", function()
  it("is exported as spore.class", function()
    assert.equal(class, spore.class)
  end)

  it("constructs with cls(...) and cls.new(...), running __init", function()
    local P = class("Point")
    function P:__init(x, y) self.x, self.y = x, y end
    function P:sum() return self.x + self.y end
    local a, b = P(1, 2), P.new(3, 4)
    assert.equal(P, getmetatable(a)); assert.equal(P, getmetatable(b))
    assert.equal(3, a:sum()); assert.equal(7, b:sum())
    -- no __init: an empty instance
    local E = class("Empty")
    assert.same({}, setmetatable(E(), nil))
  end)

  it("names the class in __name, and keeps super", function()
    local A = class("A")
    local B = class("B", A)
    assert.equal("A", getmetatable(A()).__name)
    assert.equal("B", getmetatable(B()).__name)
    assert.equal(A, B.super); assert.is_nil(A.super)
  end)

  it("falls back to the parent's methods and __init; overrides win", function()
    local A = class("A")
    function A:__init(v) self.v = v end
    function A:get() return self.v end
    function A:kind() return "a" end
    local B = class("B", A)
    function B:kind() return "b" end
    local b = B(5)
    assert.equal(5, b:get()); assert.equal("b", b:kind()); assert.equal("a", A(1):kind())
    -- methods added to the parent later are found too
    function A:later() return "later" end
    assert.equal("later", b:later())
    -- super calls
    function B:get() return A.get(self) * 2 end
    assert.equal(10, b:get())
  end)

  it("gives subclasses the parent's metamethods unless they override them", function()
    local A = class("A")
    function A:__init(n) self.n = n end
    A.__tostring = function(self) return getmetatable(self).__name .. "#" .. self.n end
    A.__len = function(self) return self.n end
    A.__eq = function(x, y) return x.n == y.n end
    A.__call = function(self, k) return self.n * k end
    local B = class("B", A)
    local C = class("C", B)
    C.__call = function(self, k) return -k end
    local b, c = B(3), C(4)
    assert.equal("B#3", tostring(b)); assert.equal("C#4", tostring(c))
    -- (LuaJIT honours __len on cdata only, so its copy is checked as a field)
    assert.equal(A.__len, rawget(B, "__len")); assert.equal(A.__len, rawget(C, "__len"))
    assert.is_true(B(3) == B(3)); assert.is_false(B(3) == B(2))
    assert.equal(6, b(2)); assert.equal(-2, c(2))
    -- the instance metamethod is a plain field of the subclass (no lookup chain per call)
    assert.equal(A.__call, rawget(B, "__call"))
    -- a metamethod defined on the parent after the subclass was made reaches it
    A.__unm = function(self) return -self.n end
    assert.equal(-3, -b); assert.equal(-4, -c)
    -- ...but not a subclass that has its own
    local D = class("D", A)
    D.__concat = function() return "D" end
    A.__concat = function() return "A" end
    assert.equal("D", D(1) .. "x"); assert.equal("A", B(1) .. "x")
  end)

  it("lets a class define its own new (called by cls(...) too), inherited by nothing else", function()
    local A = class("A")
    function A.new(x)
      if x == nil then error("A: x is required", 2) end
      return setmetatable({ x = x * 10 }, A)
    end
    assert.equal(20, A(2).x); assert.equal(30, A.new(3).x)
    -- an error at level 2 in new names the caller of A(...)
    local ok, err = pcall(function() local a = A(); return a end)
    assert.is_false(ok); assert.matches("class_spec.lua:%d+: A: x is required", err)
    -- a subclass gets the default new again
    local B = class("B", A)
    function B:__init(y) self.y = y end
    local b = B(7)
    assert.equal(7, b.y); assert.is_nil(b.x); assert.equal(B, getmetatable(b))
  end)

  it("refuses a parent that is not a class, and a name that is not a string", function()
    assert.has_error(function() class("X", {}) end, "class X: parent must be a class made by spore.class")
    assert.has_error(function() class(1) end, "class: name must be a string, got number")
  end)

  it("is what spore's own classes are made with", function()
    local nn = spore.nn
    local d = nn.Dense(2, 3)
    assert.equal("Dense", getmetatable(d).__name)
    assert.equal(nn.Module, nn.Dense.super)
    assert.equal(nn.Module.__call, rawget(nn.Dense, "__call"))
    assert.equal("Momentum", getmetatable(spore.optim.Momentum(d:trainable_params(), 0.1, 0.9)).__name)
    assert.equal(spore.optim.Optimizer, spore.optim.Momentum.super)
  end)
end)
