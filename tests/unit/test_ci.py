"""artjax.poetry.ci: the shape of a ci and each tune's dominant pattern."""

from artjax.poetry import ci

HUANXISHA = "一曲新詞酒一杯。去年天氣舊亭臺。夕陽西下幾時回。無可奈何花落去，似曾相識燕歸來。小園香徑獨徘徊。"


def test_shape_counts_clauses_and_their_stops():
  assert ci.text_of(ci.shape(HUANXISHA)) == "7.7.7.7,7.7."
  assert ci.shape(HUANXISHA, lengths_only=True) == (7,) * 6
  assert ci.shape("山一程，水一程")[-1] == "x"               # an unpunctuated tail is no pattern


def test_tune_patterns_take_the_dominant_shape_and_say_when_it_is_clear():
  other = "一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回。無可奈何花落去，似曾相識燕歸來。小園香徑獨徘徊。"
  tunes = ["浣溪沙"] * 3 + ["X"] * 3
  pats = ci.tune_patterns(tunes, [HUANXISHA, HUANXISHA, other, "a，b。", "cc。", "d。"], min_poems=2)
  assert pats["浣溪沙"]["pattern"] == ci.shape(HUANXISHA) and abs(pats["浣溪沙"]["share"] - 2 / 3) < 1e-9
  assert pats["浣溪沙"]["clear"] and not pats["X"]["clear"]
  assert ci.tune_patterns(tunes, [HUANXISHA] * 2 + [other] + ["a，b。", "cc。", "d。"], min_poems=2,
                          lengths_only=True)["浣溪沙"]["share"] == 1.0
