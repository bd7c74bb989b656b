-- The man page: wslua.1 is what scripts/man.lua makes of README.md (so the
-- committed page is up to date), and it renders without a warning.
local h = require "helpers"

local quote = h.quote

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("exit=(%d+)\n?$"))
  return status, (out:gsub("exit=%d+\n?$", ""))
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local src = h.source_dir

-- The page scripts/man.lua writes from the README now.
local function generate(readme)
  local out = os.tmpname()
  local status, err = run(string.format("lua5.4 %s %s %s > %s", quote(src .. "/scripts/man.lua"),
    quote(readme), quote(src .. "/CMakeLists.txt"), quote(out)))
  assert.equal(0, status, err)
  local page = slurp(out)
  os.remove(out)
  return page
end

-- groff's warnings (all of them, -ww) rendering a page 80 columns wide,
-- as man does on a terminal; "" when there are none.
local function warnings(page)
  assert(os.execute("command -v groff >/dev/null"), "groff is missing (groff-base)")
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(page)
  f:close()
  local status, out = run("groff -man -Tutf8 -ww -rLL=78n -z " .. quote(file))
  os.remove(file)
  assert.equal(0, status, out)
  return out
end

describe("the man page", function()
  it("is what scripts/man.lua makes of README.md (after editing the README: make man)", function()
    local committed = slurp(src .. "/wslua.1")
    local fresh = generate(src .. "/README.md")
    assert(committed == fresh, "wslua.1 is not what README.md gives: run `make man` and "
      .. "commit wslua.1 with the README")
  end)

  it("renders without warnings, and has the sections a man page has", function()
    local page = slurp(src .. "/wslua.1")
    assert.equal("", warnings(page))
    for _, section in ipairs { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS",
      "LIMITS", "TROUBLESHOOTING" } do
      assert.truthy(page:find("\n.SH " .. section .. "\n", 1, true), "no section " .. section)
    end
    -- Every command-line option of the usage text is in OPTIONS.
    local status, usage = run(quote(h.bin) .. " --help")
    assert.equal(0, status)
    for option in usage:gmatch("\n  (%-%-[%w-]+)") do
      assert.truthy(page:find("\\fB" .. option:gsub("%-", "\\-"), 1, true),
        "option " .. option .. " is not in the man page")
    end
  end)

  it("has every option of hosts, endpoints and wslua.connect in the README", function()
    local readme = slurp(src .. "/README.md")
    -- What the README shows as code: `spans`, fenced and indented blocks.
    local code = {}
    for span in readme:gmatch("`([^`\n]+)`") do
      code[#code + 1] = span
    end
    for block in readme:gmatch("\n```[^\n]*\n(.-)\n```") do
      code[#code + 1] = block
    end
    for line in readme:gmatch("\n    ([^\n]*)") do
      code[#code + 1] = line
    end
    code = table.concat(code, "\n")
    local checked = 0
    for _, file in ipairs { "host", "endpoint", "connect", "options" } do
      local source = slurp(src .. "/lua/wslua/" .. file .. ".lua")
      for block in source:gmatch("_kinds = (%b{})") do
        for name in block:gmatch("[{,%s]([%w_]+) = \"") do
          checked = checked + 1
          assert.truthy(code:find("%f[%w_]" .. name .. "%f[^%w_]"),
            "option " .. name .. " (lua/wslua/" .. file .. ".lua) is not in the README")
        end
      end
    end
    assert.is_true(checked > 40, "only " .. checked .. " options found")
  end)

  it("turns the README's Markdown into roff", function()
    local md = os.tmpname()
    local f = assert(io.open(md, "w"))
    f:write([[
# wslua

Intro with `code-span`, **bold**, *stress*, a [link](https://example.com) and <http://x.example/>.

## Command line

| option | what it does |
|---|---|
| `--flag` | does a thing |

## Some section

.starts with a dot, and a back\slash; ünïcode → here

- an item
  continued
- another

    indented code -x
    .dot

```lua
local x = "--"
```

| limit | default | setting |
|---|---|---|
| size | 1 MiB | `max` |

### Sub
]])
    f:close()
    local page = generate(md)
    os.remove(md)
    assert.matches('\n%.SH DESCRIPTION\n%.PP\nIntro with \\fBcode\\%-span\\fR, \\fBbold\\fR, '
      .. '\\fIstress\\fR, a link %(https://example%.com%) and http://x%.example/%.\n', page)
    assert.matches("\n%.SH OPTIONS\n%.TP\n\\fB\\%-\\%-flag\\fR\ndoes a thing\n", page)
    assert.matches("\n%.SH SOME SECTION\n%.PP\n\\&%.starts with a dot, and a back\\eslash; "
      .. "\\%[u00FC%]n\\%[u00EF%]code \\%[u2192%] here\n", page)
    assert.matches("\n%.IP \\%(bu 2\nan item continued\n%.IP \\%(bu 2\nanother\n", page)
    assert.matches("\n%.nf\nindented code \\%-x\n\\&%.dot\n%.fi\n", page)
    assert.matches('\n%.nf\nlocal x = "\\%-\\%-"\n%.fi\n', page)
    assert.matches("\n%.TP\nsize\ndefault: 1 MiB; setting: \\fBmax\\fR\n", page)
    assert.matches("\n%.SS Sub\n", page)
    assert.equal("", warnings(page))
  end)
end)
