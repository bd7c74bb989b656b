-- The per-message path: pooled handler coroutines (scheduler.call) and
-- messages that arrive whole (Message.whole).
local scheduler = require "wslua.scheduler"
local Message = require "wslua.message"

describe("scheduler.call", function()
  it("runs the next call in the coroutine of a call that returned", function()
    local first, second
    scheduler.call(nil, nil, function()
      first = coroutine.running()
    end)
    scheduler.call(nil, nil, function()
      second = coroutine.running()
    end)
    assert.is_true(first == second)
    assert.are.equal("suspended", coroutine.status(first))
  end)

  it("leaves a waiting call its coroutine and resumes it once", function()
    local waiting, got, other
    scheduler.call(nil, nil, function(a)
      waiting = coroutine.running()
      got = { a, scheduler.wait() }
    end, "arg")
    scheduler.call(nil, nil, function()
      other = coroutine.running()
    end)
    assert.is_false(waiting == other)
    assert.is_nil(got)
    scheduler.resume(waiting, "value")
    assert.are.same({ "arg", "value" }, got)
    -- Back in the pool: the next call runs there, not in a new one.
    local again
    scheduler.call(nil, nil, function()
      again = coroutine.running()
    end)
    assert.is_true(again == waiting or again == other)
  end)

  it("reports a failed call and does not run another in its coroutine", function()
    local failed, trace
    scheduler.call(nil, function(t)
      trace = t
    end, function()
      failed = coroutine.running()
      error("boom")
    end)
    assert.matches("boom", trace)
    assert.are.equal("dead", coroutine.status(failed))
    local next_co
    scheduler.call(nil, nil, function()
      next_co = coroutine.running()
    end)
    assert.is_false(next_co == failed)
  end)

  it("hands a failure to the _failed method of an object given as on_error", function()
    local client = {}
    function client:_failed(trace)
      self.trace = trace
    end
    scheduler.call(nil, client, function()
      error("bang")
    end)
    assert.matches("bang", client.trace)
  end)

  it("gives the call's budget to what it spawns, and restores the caller's", function()
    local inner
    assert.is_nil(scheduler.budget())
    scheduler.call(0.25, nil, function()
      scheduler.spawn(function()
        inner = scheduler.budget()
      end)
    end)
    assert.are.equal(0.25, inner)
    assert.is_nil(scheduler.budget())
  end)

  it("passes every argument, nils included", function()
    local got
    scheduler.call(nil, nil, function(...)
      got = table.pack(...)
    end, 1, nil, 3, nil)
    assert.are.equal(4, got.n)
    assert.are.same({ 1, nil, 3, nil, n = 4 }, got)
  end)
end)

describe("a message that arrived whole", function()
  it("reads its body, then nothing more", function()
    local msg = Message.whole(true, "hello")
    assert.is_true(msg.binary)
    assert.are.equal("hello", msg:read())
    assert.are.equal("", msg:read())
    assert.are.equal("wslua.Message (binary)", tostring(msg))
  end)

  it("gives its body as one chunk", function()
    local chunks = {}
    for c in Message.whole(false, "abc"):chunks() do
      chunks[#chunks + 1] = c
    end
    assert.are.same({ "abc" }, chunks)
    chunks = {}
    for c in Message.whole(false, ""):chunks() do
      chunks[#chunks + 1] = c
    end
    assert.are.same({}, chunks)
  end)

  it("reads as a message built from one piece does", function()
    for _, body in ipairs({ "", "x", string.rep("y", 1000) }) do
      local a, b = Message.whole(false, body), Message.new(false, 10)
      b:_push(body, true)
      assert.are.equal(b:read(), a:read())
      assert.are.equal(b:read(), a:read())
      assert.are.equal(tostring(b), tostring(a))
    end
  end)
end)

describe("client:send", function()
  local Client = require "wslua.client"

  it("names a payload that is not a string, at the caller's line", function()
    local ok, err = pcall(function()
      Client.send({}, 42)
    end)
    assert.is_false(ok)
    assert.matches("scheduler_spec.lua:%d+: bad argument #1 to 'send' %(string expected, got number%)", err)
  end)

  it("refuses a mode other than text or binary", function()
    local ok, err = pcall(Client.send, {}, "x", "utf8")
    assert.is_false(ok)
    assert.matches('send mode must be "text" or "binary"', err)
  end)
end)
