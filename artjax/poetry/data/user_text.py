"""`text:PATH`: a user's own poems as a poetry dataset.

PATH is a UTF-8 text file, or a folder (searched recursively) of `.txt` files. Poems are
separated by blank lines; a poem may open with a title line `# title`. Any script: the
character vocabulary is built from the training poems as for Tang poems. A poem written in
Han characters with its verses on separate lines (床前明月光，/ 疑是地上霜。) is joined into
one line, as the Tang poems are stored, so that its form (wujue, qilu, ...) is detected and
the 平水韻 measures apply; any other poem keeps its line breaks as characters (`\\n`).

Split (fixed, poem level, like the Tang builder): sha256(title, body) ordered; one in twenty to
test and one in twenty to validation, at least one poem each, so a small collection of 20
poems still has held-out poems. Reading is a few milliseconds for thousands of poems: the
corpus is parsed per process (cached by path, size and modification time), not prepared on
disk. Bad input is one ConfigError line: a missing path, no `.txt` files, a file that is
binary or not UTF-8 (the byte offset named), no poems, a poem or line over MAX_POEM_CHARS
(a file of one giant line), fewer than MIN_POEMS poems, or files over MAX_BYTES in all.
"""

from __future__ import annotations

import hashlib
import os

from artjax import ConfigError
from artjax.engine import data as data_lib

PREFIX = "text:"
MIN_POEMS = 3
MAX_POEM_CHARS = 4096
MAX_BYTES = 256 << 20
HAN_PUNCT = "，。？！；：、"
_CACHE: dict = {}


def path_of(name: str) -> str:
  return name[len(PREFIX):]


def is_text(name: str) -> bool:
  return name.startswith(PREFIX)


def check(name: str) -> None:
  """Config-time check (before anything is read): the path exists."""
  path = path_of(name)
  if not path:
    raise ConfigError("data.name 'text:' needs a path: text:POEMS.txt or text:FOLDER")
  if not os.path.exists(path):
    raise ConfigError(f"data.name {name!r}: {path} does not exist")


def _files(path: str) -> list[str]:
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise ConfigError(f"text:{path} is neither a file nor a folder")
  out = [os.path.join(d, n) for d, _, names in os.walk(path) for n in names
         if n.lower().endswith(".txt")]
  if not out:
    raise ConfigError(f"text:{path}: no .txt files in the folder")
  return sorted(out)


def _read(path: str, budget: int) -> str:
  """A regular file's text (a FIFO or device is refused, never opened for a blocking read)."""
  try:
    data = data_lib.read_regular(path, budget)
  except ValueError:
    raise ConfigError(f"text:{path} is not a regular file") from None
  if len(data) > budget:
    raise ConfigError(f"text:{path}: the corpus is over {MAX_BYTES >> 20} MiB")
  if b"\x00" in data:
    raise ConfigError(f"text:{path} is a binary file (a NUL byte at offset {data.index(0)}), "
                      "not UTF-8 text")
  try:
    return data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ConfigError(f"text:{path} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                      "save it as UTF-8") from None


def _is_han_verse(line: str) -> bool:
  return bool(line) and all("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"
                            or ch in HAN_PUNCT for ch in line)


def poems_of(content: str, where: str) -> list[tuple[str, str]]:
  """[(title, body)] of one file's text (see the module docstring)."""
  out = []
  for block in content.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
    lines = [ln.strip() for ln in block.strip("\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
      continue
    title = ""
    if lines[0].startswith("#"):
      title, lines = lines[0].lstrip("#").strip(), lines[1:]
    if not lines:
      continue
    joiner = "" if all(_is_han_verse(ln) for ln in lines) else "\n"
    body = joiner.join(lines)
    if len(body) > MAX_POEM_CHARS:
      raise ConfigError(f"{where}: a poem of {len(body):,} characters (at most {MAX_POEM_CHARS:,}; "
                        "separate poems with a blank line)")
    out.append((title, body))
  return out


def split_of(index: int, n: int) -> str:
  """Split of the poem at `index` in hash order among `n` poems: about 5 % test, 5 %
  validation (at least one each), the rest train."""
  held = max(1, n // 20)
  return "test" if index < held else "validation" if index < 2 * held else "train"


def read_corpus(name: str) -> dict:
  """split -> dict(body=[str], title=[str], author=[str], form=[int]) of `text:PATH`."""
  from artjax.poetry.data.poetry import detect_form
  check(name)
  path = path_of(name)
  files = _files(path)
  key = (path, tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files))
  if key in _CACHE:
    return _CACHE[key]
  poems, seen, budget = [], set(), MAX_BYTES
  for f in files:
    content = _read(f, budget)
    budget -= len(content.encode("utf-8"))
    for title, body in poems_of(content, f):
      if body not in seen:          # the same poem twice (two files, copied twice): once
        seen.add(body)
        poems.append((title, body))
  if len(poems) < MIN_POEMS:
    raise ConfigError(f"text:{path}: {len(poems)} poem(s); at least {MIN_POEMS} are needed "
                      "(separate poems with a blank line)")
  poems.sort(key=lambda p: hashlib.sha256(f"{p[0]}\x00{p[1]}".encode()).hexdigest())
  splits = {s: {"body": [], "title": [], "author": [], "form": []}
            for s in ("train", "validation", "test")}
  for i, (title, body) in enumerate(poems):
    sp = splits[split_of(i, len(poems))]
    sp["body"].append(body)
    sp["title"].append(title)
    sp["author"].append("")
    sp["form"].append(detect_form(body))
  _CACHE[key] = splits
  return splits
