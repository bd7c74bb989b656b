-- Builds the man page wslua.1 from README.md, so the two never say
-- different things (`make man`; spec/man_spec.lua checks the committed page
-- is what this writes).
--
--   lua5.4 scripts/man.lua README.md CMakeLists.txt > wslua.1
--
-- The README's first paragraphs are the DESCRIPTION, its "## Command line"
-- section the OPTIONS, every other "##" section a section of its own (but
-- those in SKIP). The Markdown it knows: headings, paragraphs, "- " lists,
-- fenced and indented code, tables (each row a tagged paragraph), and
-- inline `code`, **bold**, *emphasis*, [links](url) and <url>. Anything
-- else passes through as text, escaped for roff.
local readme_path, cmake_path = arg[1] or "README.md", arg[2] or "CMakeLists.txt"

local SKIP = { ["Layout"] = true }
local RENAME = { ["Command line"] = "OPTIONS" }

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local version = slurp(cmake_path):match("project%(wslua VERSION ([%d.]+)") or "unknown"

local out = {}
local function emit(s)
  out[#out + 1] = s
end

-- Characters beyond ASCII become groff's \[uXXXX], so the page renders the
-- same under any locale and groff never meets raw UTF-8.
local function unicode(s)
  return (s:gsub("[\xC2-\xF4][\x80-\xBF]*", function(ch)
    local ok, cp = pcall(utf8.codepoint, ch)
    if not ok then
      return ch
    end
    return string.format("\\[u%04X]", cp)
  end))
end

-- Text for roff: backslashes escaped, and a leading dot or quote made safe.
local function escape(s)
  return unicode((s:gsub("\\", "\\e")))
end

local function line_safe(s)
  if s:match("^[.']") then
    return "\\&" .. s
  end
  return s
end

-- Inline Markdown to roff, code spans first so that nothing inside them is
-- taken for emphasis.
local function inline(s)
  local parts = {}
  local at = 1
  while true do
    local a, b, code = s:find("`([^`]*)`", at)
    local text = s:sub(at, (a or #s + 1) - 1)
    text = escape(text)
    text = text:gsub("%[([^%]]+)%]%(([^)]+)%)", function(label, url)
      if url:sub(1, 1) == "#" then
        return label
      end
      return label .. " (" .. url .. ")"
    end)
    text = text:gsub("<(https?://[^>]+)>", "%1")
    text = text:gsub("%*%*(.-)%*%*", "\\fB%1\\fR")
    text = text:gsub("%f[%w*]%*([^*%s][^*]-)%*%f[^%w*]", "\\fI%1\\fR")
    parts[#parts + 1] = text
    if not a then
      break
    end
    parts[#parts + 1] = "\\fB" .. escape(code):gsub("%-", "\\-") .. "\\fR"
    at = b + 1
  end
  return table.concat(parts)
end

local function code_block(lines)
  emit(".PP")
  emit(".RS 4")
  emit(".nf")
  for _, l in ipairs(lines) do
    emit(line_safe(escape(l):gsub("%-", "\\-")))
  end
  emit(".fi")
  emit(".RE")
end

local function paragraph(lines, macro)
  emit(macro or ".PP")
  emit(line_safe(inline(table.concat(lines, " "))))
end

local function cells(row)
  local list = {}
  row = row:gsub("^%s*|", ""):gsub("|%s*$", "")
  for cell in (row .. "|"):gmatch("(.-)|") do
    list[#list + 1] = cell:gsub("^%s+", ""):gsub("%s+$", "")
  end
  return list
end

-- A table: each row a tagged paragraph; the first column is the tag, the
-- others follow, named by their header when there are more than one.
local function table_block(rows)
  local head = cells(rows[1])
  for i = 3, #rows do
    local c = cells(rows[i])
    emit(".TP")
    emit(line_safe(inline(c[1] or "")))
    if #head == 2 then
      emit(line_safe(inline(c[2] or "")))
    else
      -- Columns named by their header ("default: 1 MiB; setting: ..."),
      -- but a "what it is" column goes last, on a line of its own.
      local parts, what = {}, nil
      for j = 2, #head do
        if c[j] and c[j] ~= "" then
          if head[j]:match("^what ") then
            what = c[j]
          else
            parts[#parts + 1] = head[j] .. ": " .. c[j]
          end
        end
      end
      if #parts > 0 then
        emit(line_safe(inline(table.concat(parts, "; "))))
      end
      if what then
        if #parts > 0 then
          emit(".br")
        end
        emit(line_safe(inline(what)))
      end
    end
  end
end

-- The blocks of a run of Markdown lines.
local function blocks(lines)
  local i = 1
  while i <= #lines do
    local l = lines[i]
    if l:match("^%s*$") then
      i = i + 1
    elseif l:match("^```") then
      local code = {}
      i = i + 1
      while i <= #lines and not lines[i]:match("^```") do
        code[#code + 1] = lines[i]
        i = i + 1
      end
      code_block(code)
      i = i + 1
    elseif l:match("^    ") then
      local code = {}
      while i <= #lines and (lines[i]:match("^    ") or (lines[i]:match("^%s*$")
          and lines[i + 1] and lines[i + 1]:match("^    "))) do
        code[#code + 1] = lines[i]:sub(5)
        i = i + 1
      end
      code_block(code)
    elseif l:match("^|") then
      local rows = {}
      while i <= #lines and lines[i]:match("^|") do
        rows[#rows + 1] = lines[i]
        i = i + 1
      end
      table_block(rows)
    elseif l:match("^### ") then
      emit(".SS " .. inline(l:sub(5)))
      i = i + 1
    elseif l:match("^[-*] ") then
      local item = { l:sub(3) }
      i = i + 1
      while i <= #lines and lines[i]:match("^  %S") do
        item[#item + 1] = lines[i]:sub(3)
        i = i + 1
      end
      paragraph(item, ".IP \\(bu 2")
    else
      local para = {}
      while i <= #lines and not lines[i]:match("^%s*$") and not lines[i]:match("^```")
          and not lines[i]:match("^|") and not lines[i]:match("^### ")
          and not lines[i]:match("^[-*] ") do
        para[#para + 1] = lines[i]
        i = i + 1
      end
      paragraph(para)
    end
  end
end

-- The README, split into its intro and its "##" sections.
local intro, sections, current = {}, {}, nil
for l in (slurp(readme_path) .. "\n"):gmatch("(.-)\r?\n") do
  local title = l:match("^## (.+)$")
  if title then
    current = { title = title, lines = {} }
    sections[#sections + 1] = current
  elseif l:match("^# ") and not current and #intro == 0 then
    -- the title line
  elseif current then
    table.insert(current.lines, l)
  else
    intro[#intro + 1] = l
  end
end

emit('.\\" Generated from README.md by scripts/man.lua (make man): edit the README.')
emit(".TH WSLUA 1 \"\" \"wslua " .. version .. "\" \"wslua manual\"")
emit(".SH NAME")
emit("wslua \\- a scriptable WebSocket and HTTP server")
emit(".SH SYNOPSIS")
emit(".B wslua")
emit("[\\fIoptions\\fR] \\fIapp.lua\\fR [\\fIoptions\\fR]")
emit(".SH DESCRIPTION")
blocks(intro)
for _, s in ipairs(sections) do
  if not SKIP[s.title] then
    emit(".SH " .. (RENAME[s.title] or escape(s.title:gsub("`", ""):upper())))
    blocks(s.lines)
  end
end
emit(".SH SEE ALSO")
emit("The README.md and the examples/ folder of the wslua sources.")

io.write(table.concat(out, "\n"), "\n")
