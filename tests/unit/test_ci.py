"""Song ci by their tunes: the stanza break and rhyme positions derived from a corpus, the
词林正韵 units, the shape check, and the decoding tables (artjax.poetry.ci, cilin, ci_strict)."""

import numpy as np
import pytest

from helpers import CI, ci_variant

from artjax import ConfigError
from artjax.poetry import ci, ci_strict, cilin, text
from artjax.poetry.data import songci


def _stops(s: str) -> tuple:
  """'7.7.7.7,7.7.' -> ((7, 7, 7, 7, 7, 7), ('.', '.', '.', ',', '.', '.'))"""
  parts = [(int(n), p) for n, p in __import__("re").findall(r"(\d+)([.,])", s)]
  return tuple(n for n, _ in parts), tuple(p for _, p in parts)


@pytest.mark.parametrize("pattern, first_stanza", [
    ("7.7.7.7,7.7.", 3),                                   # 浣溪沙
    ("7.7.5.5.5.5.5.5.", 4),                               # 菩萨蛮 (the halves 7755 | 5555)
    ("7.7.7,7.3,3.7.7,7.", 4),                             # 鹧鸪天
    ("7.4,5.7.7.7.4,5.7.7.", 5),                           # 蝶恋花
    ("6,6.7.6.6,6.7.6.", 4),                               # 西江月
    ("4,3,4.3,4,4.7,7.3,5,3.3,3.3,3.5,4.7,7.3,5,3.", 11),   # 满江红
    ("6.6.5,6.2.2.6.", 0),                                 # 如梦令: one stanza
])
def test_stanza_break_where_the_cipu_has_it(pattern, first_stanza):
  assert ci.stanza_break(*_stops(pattern)) == first_stanza


def test_cilin_units_of_known_characters():
  assert cilin.units("东") == {(1, "p")}                  # simplified 东 -> 東, 一東
  assert cilin.units("灯") == {(11, "p")}                 # 燈, 十蒸
  assert cilin.units("月") == {(18, "z")}                 # 入聲六月
  assert {(3, "p"), (5, "p")} <= cilin.units("回")        # 十灰: split between parts 3 and 5
  assert (12, "z") in cilin.units("瘦") and (12, "z") in cilin.units("酒")   # 宥, 有: one unit
  assert cilin.units("A") == frozenset()
  assert len(cilin.all_units("p")) == 14 and len(cilin.all_units("z")) == 19
  assert cilin.unit_name((18, "z")) == "第18部入" and cilin.unit_name((1, "p")) == "第1部平"


def _corpus(copies=12):
  tunes, bodies = [], []
  for i in range(copies):
    for t, _, ps in CI:
      tunes.append(t)
      bodies.append("".join(ci_variant(p, i) for p in ps))
  return tunes, bodies


def test_derive_finds_each_tunes_shape_break_and_rhymes():
  tunes = ci.derive_all(*_corpus())
  w = tunes["浣溪沙"]
  assert w.lengths == (7,) * 6 and w.stanza == 3 and w.tone == "p"
  assert w.rhymes == (0, 1, 2, 4, 5)                      # 杯台回 / 来徊; 去 does not rhyme
  assert w.template() == "ccccccc，ccccccc。ccccccc。\nccccccc，ccccccc。ccccccc。"
  assert w.rhyme_steps() == [6, 14, 22, 39, 47]           # after the break at 24
  r = tunes["如梦令"]
  assert r.stanza == 0 and r.tone == "z" and r.rhymes == (0, 1, 3, 4, 5, 6)   # 人 is no rhyme
  p = tunes["菩萨蛮"]
  assert p.stanza == 4 and p.rhymes == (6, 7)   # the last 韻段 (程 亭): one unit per poem
  assert all(t.share == 1.0 and t.rhyme_share == 1.0 for t in tunes.values())
  assert ci.derive_all(*_corpus(), min_poems=13) == {}


def test_check_measures_shape_stanza_and_rhyme():
  tunes = ci.derive_all(*_corpus())
  w, body = tunes["浣溪沙"], "".join(CI[0][2])
  broken = songci.with_break(body, w)
  assert broken.index(ci.BREAK) == len("一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回。")
  assert w.check(broken) == {"shape": True, "stanza": True, "rhyme": True, "unit": (3, "p")}
  assert w.check(body)["stanza"] is False                 # no break where the tune has one
  assert w.check(broken.replace("徊", "去"))["rhyme"] is False
  assert w.check(broken.replace("徊", "觑"))["rhyme"] is True   # 觑: not in the dictionary, fits any
  assert w.check(broken[:-1] + "，好。")["shape"] is False
  assert songci.with_break("春风。", w) == "春风。"          # not the tune's shape: untouched
  assert tunes["如梦令"].check("".join(CI[1][2]))["stanza"] is True


def _vocab():
  chars = sorted(set("".join("".join(ps) for _, _, ps in CI) + "，。？" + ci.BREAK
                     + "灯星声明青情庚兵城清行生平名轻东红中风空同月"))
  return text.Vocab(tuple(chars), ("浣溪沙", "如梦令", "菩萨蛮"))


def test_tables_hold_the_template_and_the_rhyme_units():
  v, tune = _vocab(), ci.derive_all(*_corpus())["浣溪沙"]
  size = v.size + 3
  t = ci_strict.tables(v, size, tune, 60, strict_=True)
  assert t.tone.shape == (4, 60, size) and t.groups.shape == (30, size) and t.ok.tolist() == [True] + [False] * 3
  tpl = tune.template()
  for step, slot in enumerate(tpl):
    allowed = np.flatnonzero(t.tone[0, step])
    if slot == "c":
      assert all(text.is_han(v.chars[i - v.char0]) for i in allowed) and len(allowed) > 20
    else:
      assert allowed.tolist() == [v.index[slot]]
  assert np.flatnonzero(t.tone[0, len(tpl)]).tolist() == [text.EOS]
  assert np.flatnonzero(t.rhyme_pos[0]).tolist() == tune.rhyme_steps()
  names, _ = ci_strict.unit_masks(v, size, "p")
  ok = {names[i] for i in np.flatnonzero(t.group_ok)}
  assert (11, "p") in ok and (1, "p") in ok                # 庚青蒸 and 東冬: enough characters
  assert all(t.groups[i].sum() > len(tune.rhymes) + 1 for i in np.flatnonzero(t.group_ok))
  primed = ci_strict.tables(v, size, tune, 60, strict_=True, prime="一曲新词酒一灯")
  assert {names[i] for i in np.flatnonzero(primed.group_ok)} == {(11, "p")}   # 灯 fixes the unit
  free = ci_strict.tables(v, size, tune, 60, strict_=False)
  assert not free.rhyme_pos.any() and free.no_repeat is False and t.no_repeat is True


def test_requests_that_cannot_fit_are_one_error():
  v, tune = _vocab(), ci.derive_all(*_corpus())["浣溪沙"]
  with pytest.raises(ConfigError, match="does not fit 浣溪沙"):
    ci_strict.tables(v, v.size, tune, 0, strict_=True, prime="一曲新词，")
  with pytest.raises(ConfigError, match="no rhyme unit"):
    ci_strict.tables(v, v.size, tune, 0, strict_=True, prime="一曲新词酒一月")   # 月: entering tone
  bare = text.Vocab(tuple(sorted("一曲新词")), ())
  with pytest.raises(ConfigError, match="lacks"):
    ci_strict.tables(bare, bare.size, tune, 0, strict_=False)


@pytest.mark.parametrize("key, value, words", [("tune", "浣溪沙", "--tune applies to a model of ci"),
                                               ("form", "ci", "needs a model trained on ci")])
def test_ci_options_need_a_model_of_ci(key, value, words):
  from artjax.tasks.build import build_task
  from configs.poetry import get_config
  c = get_config("default,smoke")
  c.sample[key] = value
  with pytest.raises(ConfigError, match=words):
    build_task(c)
