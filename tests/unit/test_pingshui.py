"""The 平水韻 measure on poems whose verdict is known."""

import pytest

from artjax.poetry import pingshui

DENG_GUAN_QUE = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"        # 王之渙, 五絕
JUE_JU = "兩個黃鸝鳴翠柳，一行白鷺上青天。窗含西嶺千秋雪，門泊東吳萬里船。"  # 杜甫, 七絕
CHUN_WANG = ("國破山河在，城春草木深。感時花濺淚，恨別鳥驚心。"
             "烽火連三月，家書抵萬金。白頭搔更短，渾欲不勝簪。")             # 杜甫, 五律
JING_YE_SI = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"          # 李白: 古絕, not regulated


def test_regulated_classics_pass_with_their_templates_and_groups():
  for body, form, tpl, group in ((DENG_GUAN_QUE, "wujue", "仄起首句不入韻", "下平聲十一尤"),
                                 (JUE_JU, "qijue", "仄起首句不入韻", "下平聲一先"),
                                 (CHUN_WANG, "wulu", "仄起首句不入韻", "下平聲十二侵")):
    c = pingshui.check(body, form)
    assert c["rhyme"] and c["tones"], (body, c)
    assert c["template"] == tpl and c["group"] == group and c["unknown"] == 0


def test_an_ancient_style_quatrain_rhymes_but_breaks_the_tones():
  c = pingshui.check(JING_YE_SI, "wujue")
  assert c["rhyme"] and not c["tones"]


def test_broken_rhyme_and_shape():
  broken = DENG_GUAN_QUE.replace("樓", "山")      # 山 is 上平聲十五刪, 流 is 十一尤
  assert not pingshui.check(broken, "wujue")["rhyme"]
  assert pingshui.check(DENG_GUAN_QUE, "qijue") is None
  assert pingshui.check("白日依山盡。", "wujue") is None


def test_lone_level_tone_and_three_level_tail_are_faults():
  # 仄平仄仄平 in the B position: only one 平 besides the rhyme (孤平)
  assert not pingshui._line_ok("白河入海流", "B")
  assert pingshui._line_ok("黃河入海流", "B")
  # 三平尾: a D verse whose free 3rd position is 平 ends 平平平
  assert pingshui.tone_of("層") == {"p"} and pingshui.tone_of("一") == {"z"}
  assert not pingshui._line_ok("更上層樓流", "D")
  assert pingshui._line_ok("更上一層樓", "D")


@pytest.mark.parametrize("first, seq", [("A", "ABCD"), ("C", "CDAB"), ("B", "BDAB"), ("D", "DBCD")])
def test_templates_follow_dui_and_nian(first, seq):
  assert "".join(pingshui.template(first, 4)) == seq
  t = pingshui.template(first, 8)
  for i in range(1, 8, 2):   # 對: within a couplet the 2nd tones differ
    assert pingshui.line_pattern(t[i], 5)[1] != pingshui.line_pattern(t[i - 1], 5)[1]
  for i in range(2, 8, 2):   # 粘: a couplet's first verse takes the 2nd tone of the verse before
    assert pingshui.line_pattern(t[i], 5)[1] == pingshui.line_pattern(t[i - 1], 5)[1]


def test_rates():
  r = pingshui.rates([DENG_GUAN_QUE, JING_YE_SI, "不是詩"], "wujue")
  assert r["n"] == 2 and r["rhyme"] == 1.0 and r["tones"] == 0.5 and r["regulated"] == 0.5
