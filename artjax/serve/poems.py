"""Serving the poetry Transformer: /v1/poems (JSON with each poem's 平水韻 check, plain text,
or calligraphy sheets as PNG), by form, strictness, acrostic, opening and poet.

Model side: the exported sampler, one request per call; a request's masks are the sampler's
inputs, built on the host from the export's poetry.npz vocabulary, so every form, acrostic and
opening runs one compiled program per batch size. HTTP side: the request's fields, checked,
and the answer's bytes.
"""

from __future__ import annotations

import dataclasses
import io
import json

import jax
import numpy as np

from artjax import ConfigError, deploy
from artjax.poetry import calligraphy, ci, ci_strict, cilin, pingshui, strict, text
from artjax.serve.http import BadRequest, Endpoint, counted_request, field
from artjax.serve.served import Model, buckets

KIND = "poems"
EXPORTED, IN_MEMORY = deploy.ARTIFACT, "sampler"
FIELDS = {"model", "form", "strict", "acrostic", "prime", "author", "tune", "num", "seed", "format"}


@dataclasses.dataclass
class PoemModel(Model):
  poetry: dict | None = None   # {"vocab": text.Vocab, "steps": T, "size": V, "tunes": {name: Tune}}
  formats = ("json", "text", "png")

  def tune(self, name: str) -> ci.Tune:
    return tune_of(self.poetry["tunes"], name)

  def describe(self) -> dict:
    """A model of ci also lists its tunes (name, template, rhyme positions ...)."""
    return dict(super().describe(), tunes=[dataclasses.asdict(t) for t in self.poetry["tunes"].values()])

  def poem_tables(self, form: str, strict_: bool, acrostic: str = "", prime: str = "",
                  tune: str = "") -> tuple:
    """The sampler's mask inputs for a request (ConfigError when it cannot be met)."""
    p = self.poetry
    if form == "ci":
      return ci_strict.tables(p["vocab"], p["size"], self.tune(tune), p["steps"], strict_=strict_,
                              prime=prime).arrays()
    strict.check_request(p["vocab"], form, acrostic, prime)
    return strict.tables_for(p["vocab"], p["size"], p["steps"], form=form, strict_=strict_,
                             acrostic=acrostic, prime=prime).arrays()

  def run_poems(self, seed: int, form: str, author: int, num: int, arrays):
    """tokens [num, T]: row i equals row i of `run.py sample --num=num --seed=seed`."""
    b = self.bucket(num)
    token = text.FORMS.index("other" if form == "ci" else form)      # a ci's FORM is "other"
    prompt = np.tile(np.int32([[text.BOS, text.FORM0 + token, author]]), (b, 1))
    return np.asarray(self.fn(np.int32(seed), prompt, *arrays))[:num]

  def author_token(self, author: str) -> int:
    v = self.poetry["vocab"]
    if author and author not in v.authors:
      raise ConfigError(f"author {author!r} is not one of the model's {len(v.authors)} poets "
                        f"(e.g. {', '.join(v.authors[:8])})")
    return v.author_token(author) if author else text.ANY_AUTHOR

  def run_request(self, r: dict) -> list[str]:
    """The poems of a request (form, strict, acrostic, prime, author, num, seed), or
    ValueError(reason) for one the model cannot write."""
    try:
      arrays = self.poem_tables(r["form"], r["strict"], r["acrostic"], r["prime"], r["tune"])
      author = (self.poetry["vocab"].author_token(r["tune"]) if r["form"] == "ci"
                else self.author_token(r["author"]))
    except ConfigError as e:
      raise ValueError(str(e)) from None
    tokens = self.run_poems(r["seed"], r["form"], author, r["num"], arrays)
    return [self.poetry["vocab"].decode(row) for row in np.asarray(tokens)]

  def warm_up(self) -> None:
    tunes = self.poetry["tunes"]
    form, tune = ("ci", next(iter(tunes))) if tunes else ("wujue", "")
    arrays = self.poem_tables(form, False, tune=tune)
    for b in self.buckets:
      jax.block_until_ready(self.run_poems(0, form, text.ANY_AUTHOR, b, arrays))


def tunes_of(rows: list) -> dict:
  """{name: ci.Tune} of the tunes' dicts (poetry.npz's ci_tunes, a served model's description)."""
  return {d["name"]: ci.Tune(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
          for d in rows}


def tune_of(tunes: dict, name: str) -> ci.Tune:
  """The Tune called `name`; ConfigError naming the commonest otherwise."""
  if name not in tunes:
    top = sorted(tunes, key=lambda t: -tunes[t].poems)[:8]
    raise ConfigError(f"tune {name!r} is not one of the model's {len(tunes)} tunes "
                      f"(e.g. {', '.join(top)})")
  return tunes[name]


def _poetry(blob: bytes, manifest: dict) -> dict:
  """The vocabulary and mask shapes of a poetry export's poetry.npz."""
  t = np.load(io.BytesIO(blob))
  authors = tuple(str(a) for a in t["authors"] if str(a))
  vocab = text.Vocab(tuple(str(c) for c in t["chars"]), authors)
  if vocab.char0 != int(t["char0"]):
    raise ConfigError("poetry.npz does not match this version's token layout: export the run again")
  shape = next(i["shape"] for i in manifest["inputs"] if i["name"] == "tone")
  tunes = tunes_of(json.loads(str(t["ci_tunes"]))) if "ci_tunes" in t else {}
  return {"vocab": vocab, "steps": int(shape[1]), "size": int(shape[2]), "tunes": tunes}


def make(name: str, manifest: dict, fn, files: dict, limits: dict, path: str) -> PoemModel:
  if "poetry.npz" not in files:
    raise ConfigError(f"{path!r} has no poetry.npz beside its sampler: export the run again")
  n = min(limits["max_num"], limits["max_music"])
  return PoemModel(name, KIND, manifest, fn, buckets(n), n,
                   poetry=_poetry(files["poetry.npz"], manifest))


def parse(body: dict, m, settings) -> dict:
  """A validated /v1/poems request (BadRequest with the first problem)."""
  req = counted_request(body, FIELDS, "a poetry model", m.max_num, PoemModel.formats, "json")
  req.update(form=field(body, "form", str, "wujue"), strict=body.get("strict", False),
             acrostic=field(body, "acrostic", str, ""), prime=field(body, "prime", str, ""),
             author=field(body, "author", str, ""), tune=field(body, "tune", str, ""))
  if not isinstance(req["strict"], bool):
    raise BadRequest(422, f"'strict' must be true or false, got {json.dumps(req['strict'])}")
  if req["form"] == "ci" or m.description.get("tunes"):
    return _parse_ci(req, m)
  if req["form"] not in text.SHAPES:
    raise BadRequest(422, f"unknown form {req['form']!r}; choose one of {', '.join(text.SHAPES)}")
  verses = text.SHAPES[req["form"]][0]
  if req["acrostic"] and (len(req["acrostic"]) != verses or not all(map(text.is_han, req["acrostic"]))):
    raise BadRequest(422, f"'acrostic' must be {verses} Han characters (one per verse of a "
                          f"{req['form']}), got {req['acrostic']!r}")
  if len(req["prime"]) > len(text.template(req["form"])):
    raise BadRequest(422, f"'prime' is longer than a {req['form']}")
  if req["format"] == "png":
    try:
      calligraphy.find_font()
    except ConfigError as e:
      raise BadRequest(422, str(e)) from None
  return req


def _parse_ci(req: dict, m) -> dict:
  """A ci request to a model of ci: its tune (shape, stanzas, rhymes); no acrostic."""
  if not m.description.get("tunes"):
    raise BadRequest(422, f"model {m.name!r} does not write ci (form 'ci' needs a model of ci)")
  if req["form"] not in ("ci", "wujue"):       # wujue: the field's default
    raise BadRequest(422, f"model {m.name!r} writes ci: send form 'ci' and a 'tune'")
  req["form"] = "ci"
  if req["acrostic"] or req["author"]:
    raise BadRequest(422, "a ci takes a 'tune', not an 'acrostic' or 'author'")
  try:
    tune = tune_of(tunes_of(m.description["tunes"]), req["tune"])
  except ConfigError as e:
    raise BadRequest(422, str(e)) from None
  if len(req["prime"]) > len(tune.template()):
    raise BadRequest(422, f"'prime' is longer than a {tune.name}")
  return req


async def run(work, m, req):
  return await work.poems(m.name, {k: v for k, v in req.items() if k != "format"})


def encode(bodies, m, req: dict) -> tuple[bytes, str]:
  """(content, format) of a /v1/poems answer: JSON with each poem's 平水韻 check, plain
  text, or calligraphy sheets (PNG)."""
  if req["form"] == "ci":
    return _encode_ci(bodies, m, req)
  if req["format"] == "text":
    return ("\n\n".join("\n".join(pingshui.verses(b)) for b in bodies) + "\n").encode(), "text"
  if req["format"] == "png":
    buf = io.BytesIO()
    calligraphy.write_sheets(bodies, [req["form"]] * len(bodies), buf)
    return buf.getvalue(), "png"
  poems = [{"text": b, "verses": pingshui.verses(b), **_checked(b, req["form"])} for b in bodies]
  return json.dumps({"model": m.name, "seed": req["seed"], "form": req["form"],
                     "strict": req["strict"], "poems": poems}, ensure_ascii=False).encode(), "json"


def _encode_ci(bodies, m, req: dict) -> tuple[bytes, str]:
  """A ci answer: `# tune` and a line per stanza (text), sheets titled by the tune (png), or
  JSON with each ci's stanzas and its check against the tune (shape, stanza, rhyme, unit)."""
  tune = tunes_of(m.description["tunes"])[req["tune"]]
  if req["format"] == "text":
    return ("\n\n".join(f"# {tune.name}\n{b.strip(ci.BREAK)}" for b in bodies) + "\n").encode(), "text"
  if req["format"] == "png":
    buf = io.BytesIO()
    calligraphy.write_sheets(bodies, ["ci"] * len(bodies), buf, titles=[tune.name] * len(bodies))
    return buf.getvalue(), "png"
  poems = []
  for b in bodies:
    c = tune.check(b)
    poems.append({"text": b.replace(ci.BREAK, ""), "stanzas": b.strip(ci.BREAK).split(ci.BREAK),
                  "shape": c["shape"], "stanza": c["stanza"], "rhyme": c["rhyme"],
                  "unit": cilin.unit_name(c["unit"]) if c["unit"] else None})
  return json.dumps({"model": m.name, "seed": req["seed"], "form": "ci", "tune": tune.name,
                     "strict": req["strict"], "poems": poems}, ensure_ascii=False).encode(), "json"


def _checked(body: str, form: str) -> dict:
  c = pingshui.check(body, form)
  return {"rhyme": None, "tones": None} if c is None else {
      "rhyme": c["rhyme"], "tones": c["tones"], "template": c["template"], "group": c["group"]}


POEMS = Endpoint(KIND, parse, run, encode)
