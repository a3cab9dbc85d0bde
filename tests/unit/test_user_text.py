"""`text:PATH` (artjax.poetry.data.user_text): a user's own poems as a poetry dataset."""

import os

import pytest

from artjax import ConfigError
from artjax.poetry.data import user_text

TYGER = "# The Tyger\nTyger Tyger, burning bright,\nIn the forests of the night;\n"
JINGYESI = "床前明月光，\n疑是地上霜。\n舉頭望明月，\n低頭思故鄉。\n"


def _corpus(tmp_path, n=25, name="poems.txt"):
  poems = [TYGER, JINGYESI] + [f"# poem {i}\nline one of {i}\nline two of {i}\n" for i in range(n - 2)]
  p = tmp_path / name
  p.write_text("\n".join(poems), encoding="utf-8")
  return p


def test_poems_titles_han_verses_joined_and_free_verse_keeps_its_lines():
  got = user_text.poems_of(TYGER + "\n\n" + JINGYESI + "\r\n\r\nno title\nsecond line", "x")
  assert got[0] == ("The Tyger", "Tyger Tyger, burning bright,\nIn the forests of the night;")
  assert got[1] == ("", "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。")
  assert got[2] == ("", "no title\nsecond line")


def test_splits_hold_every_poem_once_with_held_out_poems_and_detected_forms(tmp_path):
  p = _corpus(tmp_path)
  (tmp_path / "dup").mkdir()
  (tmp_path / "dup" / "again.txt").write_text(JINGYESI, encoding="utf-8")   # a copy: kept once
  sp = user_text.read_corpus(f"text:{tmp_path}")
  sizes = {k: len(v["body"]) for k, v in sp.items()}
  assert sizes["test"] >= 1 and sizes["validation"] >= 1 and sum(sizes.values()) == 25
  bodies = [b for v in sp.values() for b in v["body"]]
  assert len(set(bodies)) == 25
  forms = {b: f for v in sp.values() for b, f in zip(v["body"], v["form"])}
  assert forms["床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"] == 0       # wujue
  assert forms["Tyger Tyger, burning bright,\nIn the forests of the night;"] == 4
  assert user_text.read_corpus(f"text:{p}")["train"]["body"]               # a file alone


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary file (a NUL byte at offset 8)"),
    ("床前明月光".encode("gb18030") + b"\n\nab\n\ncd", "not UTF-8 text (byte 0"),
    (b"", "0 poem(s); at least 3"),
    (b"one poem\n\nanother", "2 poem(s)"),
    (b"x" * 5000, "a poem of 5,000 characters"),
])
def test_bad_corpora_are_one_line(tmp_path, content, words):
  p = tmp_path / "bad.txt"
  p.write_bytes(content)
  with pytest.raises(ConfigError, match=None) as e:
    user_text.read_corpus(f"text:{p}")
  assert words in str(e.value) and "\n" not in str(e.value)


def test_missing_paths_folders_without_text_and_fifos_are_one_line(tmp_path):
  with pytest.raises(ConfigError, match="does not exist"):
    user_text.check(f"text:{tmp_path / 'nope.txt'}")
  with pytest.raises(ConfigError, match="needs a path"):
    user_text.check("text:")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match="no .txt files"):
    user_text.read_corpus(f"text:{tmp_path / 'empty'}")
  os.mkfifo(tmp_path / "empty" / "pipe.txt")                # never opened for a blocking read
  with pytest.raises(ConfigError, match="not a regular file"):
    user_text.read_corpus(f"text:{tmp_path / 'empty'}")


def test_the_poetry_task_takes_a_text_corpus_with_free_verse_by_default(tmp_path):
  from artjax.tasks.build import build_task as build
  from configs.poetry import get_config
  p = _corpus(tmp_path)
  c = get_config("default,smoke")
  c.data.update(name=f"text:{p}", min_count=1, max_chars=80)
  task = build(c)
  assert c.sample.form == "other" and not c.sample.constrained
  seqs = task.sequences("train")
  assert seqs.shape[1] == task.seq_len and "\n" in task.vocab.index
  assert "T" in task.vocab.index and "床" in task.vocab.index
  c.data.name = "verses"
  with pytest.raises(ConfigError, match="text:PATH"):
    build(c)
