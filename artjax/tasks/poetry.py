"""Poetry: a character-level Transformer on Tang poems (the music model's code, another
vocabulary), forms guaranteed by constrained decoding.

Data (artjax.tasks.datasets.load_poetry): poems of at most `data.max_chars` characters from the
train split (all poets, or `data.author`'s for fine-tuning), each the sequence
BOS FORM AUTHOR chars EOS (artjax.poetry.text); the step draws `train.batch_size` poems at
random on device. The author token is ANY_AUTHOR for poets outside the
`data.num_authors` most prolific, and with probability `model.cond_dropout` for anyone
(so "any author" is a learned mode). The loss is the mean NLL of the characters and EOS;
`bits_per_char` is that NLL in bits (punctuation and the end token count as characters).

The vocabulary's size is fixed by the config (`data.vocab_chars` most frequent training
characters, the rest UNK), so the model's shapes are known before any data is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax import ConfigError
from artjax.poetry import data as data_lib
from artjax.engine import workdir as runs
from artjax.poetry.data import songci, user_text
from artjax.poetry.data.poetry import VERSE_END
from artjax.nn.transformer import CausalTransformer
from artjax.poetry import calligraphy, ci, ci_strict, pingshui, strict, text
from artjax.tasks.base import Sampler, cast_floating
from artjax.tasks.lm import TransformerLM
from artjax.tasks import poetry_report

FT_METHODS = ("none", "full", "lora", "prefix")


class PoetryTask(TransformerLM):
  eval_key = "val_bits_per_char"
  sample_kind = "poems"
  sample_options = ("prime", "temperature", "top_p", "form", "acrostic", "author", "rhyme",
                    "strict", "template", "rhyme_group", "tune")

  def validate(self):
    c = self.config
    self._check_common()
    s = c.sample
    for key, value in (("strict", False), ("template", ""), ("rhyme_group", ""), ("tune", "")):
      if key not in s:          # a run saved before these options existed
        s[key] = value
    self._check_model(FT_METHODS)
    self._check_data()
    if not 8 <= c.data.max_chars <= 2048:
      raise ConfigError(f"data.max_chars must be in 8..2048, got {c.data.max_chars}")
    self._check_form()
    if not 0.0 < s.top_p <= 1.0 or s.temperature < 0:
      raise ConfigError("sample.top_p must be in (0, 1] and sample.temperature >= 0")
    if s.acrostic and s.form in text.SHAPES and len(s.acrostic) != text.SHAPES[s.form][0]:
      raise ConfigError(f"--acrostic {s.acrostic!r} has {len(s.acrostic)} characters; a "
                        f"{s.form} has {text.SHAPES[s.form][0]} verses")
    if s.acrostic and not s.constrained:
      raise ConfigError("--acrostic needs constrained decoding (sample.constrained=True)")
    if s.acrostic and not all(text.is_han(ch) for ch in s.acrostic):
      raise ConfigError(f"--acrostic {s.acrostic!r}: every character must be a Han character "
                        f"(one per verse), got {next(c for c in s.acrostic if not text.is_han(c))!r}")
    if (s.template or s.rhyme_group) and s.form == "ci":
      raise ConfigError("--template and --rhyme_group apply to regulated verse; a ci's rhyme "
                        "and shape come from its --tune")
    if (s.strict or s.template or s.rhyme_group) and not (
        s.constrained and (s.form in text.SHAPES or s.form == "ci")):
      raise ConfigError("--strict, --template and --rhyme_group need constrained decoding of a "
                        f"regulated form ({', '.join(text.SHAPES)}), got form {s.form!r}")
    if (s.template or s.rhyme_group) and not s.strict:
      raise ConfigError("--template and --rhyme_group apply to --strict decoding")
    strict.canonical_template(s.template)
    if s.rhyme_group and s.rhyme_group not in pingshui.level_groups():
      groups = pingshui.level_groups()
      raise ConfigError(f"unknown rhyme group {s.rhyme_group!r}; the 平聲 groups are "
                        f"{groups[0]}, {groups[1]} ... {groups[-1]}")
    self.plan = bool(c.data.get("rhyme_plan", False))
    self.prefix_len = text.PREFIX + (2 if self.plan else 0)
    self.vocab_size = (text.AUTHOR0 + c.data.num_authors + c.data.vocab_chars
                       + (text.PLAN_TOKENS if self.plan else 0))
    self.seq_len = self.prefix_len + c.data.max_chars + 1
    self._vocab = None
    self._init_model()

  def _check_form(self):
    """A ci model writes ci (`--form=ci`, `--tune`); the others the Tang forms or free verse."""
    s, is_ci = self.config.sample, songci.is_ci(self.config.data.name)
    if is_ci != (s.form == "ci"):
      raise ConfigError("--form=ci needs a model trained on ci (data.name=ci)" if not is_ci else
                        f"a model of ci writes ci (--form=ci --tune=TUNE), not {s.form!r}")
    if s.form not in text.SHAPES and s.form != "ci" and not (s.form == "other" and not s.constrained):
      raise ConfigError(f"unknown form {s.form!r}; choose one of {tuple(text.SHAPES)} (or ci "
                        "for a model of ci)")
    if s.tune and not is_ci:
      raise ConfigError("--tune applies to a model of ci (--form=ci)")
    if is_ci and s.acrostic:
      raise ConfigError("--acrostic applies to regulated verse, not to ci")

  def _check_data(self):
    """`data.name`: "poetry" (Tang) or "text:PATH" (checked before anything is read);
    `sample.form` "auto": wujue for Tang poems, unconstrained free verse ("other") for a
    user's corpus; `data.vocab_from`: the corpus whose training split gives the characters
    (a fine-tuning run takes its pretrained run's, so the weights mean the same characters)."""
    c, s = self.config, self.config.sample
    if "vocab_from" not in c.data:
      c.data.vocab_from = ""
    if user_text.is_text(c.data.name):
      user_text.check(c.data.name)
    elif c.data.name not in ("poetry", songci.NAME):
      raise ConfigError(f"data.name {c.data.name!r}: 'poetry' (Tang poems), 'ci' (Song ci by "
                        "their tunes) or text:PATH (your poems: a UTF-8 file or folder of .txt, "
                        "blank lines between poems)")
    if s.form == "auto":
      s.form = ("other" if user_text.is_text(c.data.name) else
                "ci" if songci.is_ci(c.data.name) else "wujue")
    if s.form == "other":
      s.constrained = False
    source = c.finetune.init_from if c.finetune.method != "none" else ""
    if source and os.path.isfile(os.path.join(source, "config.json")):
      src = runs.load_config(source).data     # the pretrained model's tokens, whatever the recipe
      if not c.data.vocab_from:
        c.data.vocab_from = src.get("vocab_from", "") or src.get("name", "poetry")
      c.data.rhyme_plan = bool(src.get("rhyme_plan", False))

  def build(self, key):
    m = self.config.model
    return CausalTransformer(self.vocab_size, m.d_model, m.num_layers, m.num_heads, m.d_ff,
                            m.dropout, remat=m.remat, rngs=nnx.Rngs(key))

  def describe(self):
    m, d = self.config.model, self.config.data
    extra = "" if self.finetune is None else f", fine-tuning: {self.finetune.method}"
    who = (f"{d.author}'s poems" if d.author else f"the poems of {user_text.path_of(d.name)}"
           if user_text.is_text(d.name) else "Song ci by their tunes" if songci.is_ci(d.name)
           else "Tang poems")
    return (f"poetry transformer {m.num_layers}x{m.d_model} ({self.num_params:,} params, vocab "
            f"{self.vocab_size:,}) on {who} of <= {d.max_chars} characters{extra}")

  # --- data (host) --------------------------------------------------------------------
  def poems(self, name: str = ""):
    d = self.config.data
    return data_lib.load(name or d.name, d.source_dir, d.data_dir or None)

  @property
  def tunes(self) -> dict:
    """{tune name: artjax.poetry.ci.Tune} of a ci corpus's training split ({} otherwise)."""
    d = self.config.data
    return songci.load(d.source_dir, d.data_dir or None)[1] if songci.is_ci(d.name) else {}

  def tune(self, name: str):
    """The Tune a constrained ci follows; ConfigError naming the nearest tunes otherwise."""
    tunes = self.tunes
    if name not in tunes:
      top = sorted(tunes, key=lambda t: -tunes[t].poems)[:8]
      raise ConfigError(f"--tune {name!r} is not one of the {len(tunes)} tunes with a clear "
                        f"pattern (e.g. {', '.join(top)})" if name else
                        f"--form=ci needs --tune (e.g. {', '.join(top)}), or unconstrained "
                        "decoding (--config.sample.constrained=False)")
    return tunes[name]

  @property
  def vocab(self) -> text.Vocab:
    """The characters and poets of the whole training split (not only `data.author`'s, so
    a fine-tuned model shares its pretrained model's vocabulary; of `data.vocab_from`'s corpus
    when set: a user's poems fine-tuning a Tang model keep the Tang characters)."""
    if self._vocab is None:
      d = self.config.data
      tr = self.poems(d.get("vocab_from", "")).splits["train"]
      self._vocab = text.build_vocab(tr["body"], tr["author"], d.min_count, d.num_authors,
                                     d.vocab_chars)
      if d.get("vocab_from", "") and d.vocab_from != d.name:
        own = "".join(self.poems().splits["train"]["body"])
        known = sum(ch in self._vocab.index for ch in own) / max(len(own), 1)
        print(f"note: the vocabulary of {d.vocab_from} (the pretrained run's) covers {known:.1%} "
              f"of the characters of {d.name}; the rest are UNK", file=sys.stderr)
    return self._vocab

  def sequences(self, split: str, author: str | None = None) -> np.ndarray:
    """[N, seq_len] int32 of a split's poems (<= data.max_chars; of `author` if given)."""
    sp, d, v = self.poems().splits[split], self.config.data, self.vocab
    author = d.author if author is None else author
    keep = (self._regulated if split == "train" and d.get("regulated_only", False)
            else lambda body, form: True)
    rows = [self.sequence(b, int(f), v.author_token(a))
            for b, f, a in zip(sp["body"], sp["form"], sp["author"])
            if len(b) <= d.max_chars and (not author or a == author) and keep(b, int(f))]
    if not rows:
      shortest = min((len(b) for b in sp["body"]), default=0)
      raise ConfigError(f"no {split} poems of <= {d.max_chars} characters"
                        + (f" by {author!r}" if author else "")
                        + (f" (the shortest of {len(sp['body'])} has {shortest}: raise "
                           "data.max_chars)" if shortest > d.max_chars else ""))
    return np.stack(rows)

  def sequence(self, body: str, form: int, author_token: int) -> np.ndarray:
    """[seq_len] tokens of one poem (with its rhyme-plan token when data.rhyme_plan)."""
    plan = None
    if self.plan:
      name = text.FORMS[form]
      c = pingshui.check(body, name) if name in pingshui.SHAPES else None
      g = c["group"] if c and c["rhyme"] else None
      levels = pingshui.level_groups()
      kinds = ([pingshui.template_name(k, pingshui.SHAPES[name][1]) for k in "ABCD"]
               if c and c["tones"] else [])
      plan = text.plan_tokens(self.vocab, levels.index(g) if g in levels else None,
                              kinds.index(c["template"]) if kinds else None)
    return text.sequence(self.vocab, body, form, author_token, self.seq_len, plan)

  @staticmethod
  def _regulated(body: str, form: int) -> bool:
    """A regulated form that passes the 平水韻 rhyme and tone tests (data.regulated_only)."""
    name = text.FORMS[form]
    c = pingshui.check(body, name) if name in pingshui.SHAPES else None
    return bool(c and c["rhyme"] and c["tones"])

  def device_data(self):
    out = {"train": {"tokens": self.sequences("train")}}
    if self.config.train.eval_every:
      out["val"] = self.sequences("validation")
    return out

  # --- state and training (pure) ----------------------------------------------------
  def token_nll(self, params, prefix, seq, rng=None):
    """(-log p of each target [B, L-1], weight [B, L-1]: the characters and EOS)."""
    nll, targets = self.next_nll(params, prefix, seq, rng)
    # scored: the characters and EOS, and the rhyme-plan token (a model must learn to choose it)
    weight = ((targets != text.PAD) & (jnp.arange(targets.shape[1]) >= text.PREFIX - 1)).astype(jnp.float32)
    return nll, weight

  def batch(self, key, data):
    c = self.config
    k_idx, k_drop = jax.random.split(key)
    idx = jax.random.randint(k_idx, (c.train.batch_size,), 0, data["train_size"])
    seq = data["train"]["tokens"][idx]
    drop = jax.random.bernoulli(k_drop, c.model.cond_dropout, (seq.shape[0],))
    return seq.at[:, 2].set(jnp.where(drop, text.ANY_AUTHOR, seq[:, 2]))

  def scored_nll(self, params, prefix, seq, key):
    """Per-character NLL of a training batch of poems and its weights (characters, EOS)."""
    return self.token_nll(params, prefix, seq, key)

  def step_metrics(self, loss, total, seq):
    return {"bits_per_char": loss / math.log(2)}

  def nll_sum(self, state, seqs, batch: int = 128):
    """(summed NLL in nats, scored characters) over [N, L] sequences. With a rhyme plan the
    plan token's NLL is in the sum but not a character: -log p(plan, poem) >= -log p(poem),
    so the bits per character are an upper bound on the poem's own."""
    params, prefix = self.model_params(state)
    pad = (-seqs.shape[0]) % batch
    seqs = jnp.pad(seqs, ((0, pad), (0, 0)), constant_values=text.PAD)

    chars = jnp.arange(seqs.shape[1] - 1) >= self.prefix_len - 1   # the plan is no character

    def body(acc, chunk):
      nll, w = self.token_nll(params, prefix, chunk)
      return (acc[0] + jnp.sum(nll * w), acc[1] + jnp.sum(w * chars)), None
    (total, n), _ = jax.lax.scan(body, (jnp.zeros(()), jnp.zeros(())),
                                 seqs.reshape((-1, batch) + seqs.shape[1:]))
    return total, n

  def evaluate(self, state, data):
    total, n = self.nll_sum(state, data["val"])
    return {"val_bits_per_char": total / jnp.maximum(n, 1.0) / math.log(2)}

  # --- sampling -----------------------------------------------------------------------
  def check_sample(self, opening=None):
    """ConfigError for sample settings the vocabulary or form cannot honour."""
    s, v = self.config.sample, self.vocab
    if s.form == "ci":
      self._check_ci(opening or "")
      return
    strict.check_request(v, s.form, s.acrostic, opening or "", s.constrained)
    if s.author and s.author not in v.authors:
      raise ConfigError(f"--author {s.author!r} is not one of the model's {len(v.authors)} poets "
                        f"(e.g. {', '.join(v.authors[:8])})")

  def _check_ci(self, opening: str):
    s, v = self.config.sample, self.vocab
    if s.constrained:
      tune = self.tune(s.tune)
      need = len(tune.template())
      if need > self.config.data.max_chars:
        raise ConfigError(f"a {tune.name} has {need} characters (with punctuation and the stanza "
                          f"break); this model writes at most {self.config.data.max_chars} "
                          "(data.max_chars)")
      ci_strict.check_request(v, tune, opening)
    elif s.tune and s.tune not in v.authors:
      raise ConfigError(f"--tune {s.tune!r} is not one of the model's {len(v.authors)} tune "
                        f"tokens (e.g. {', '.join(v.authors[:8])})")
    missing = v.missing(opening)
    if missing:
      raise ConfigError(f"--prime {opening!r}: {''.join(missing)!r} not in the model's vocabulary")

  def tables(self, opening=None, steps: int = 0) -> strict.Tables:
    """The masks of the sample settings, `steps` rows (0: as many as the form needs)."""
    s = self.config.sample
    if s.form == "ci" and s.constrained:
      return ci_strict.tables(self.vocab, self.vocab_size, self.tune(s.tune), steps,
                              strict_=s.strict, prime=opening or "")
    if s.form == "ci":
      return strict.tables_for(self.vocab, self.vocab_size, steps, form="other", strict_=False,
                               constrained=False, prime=opening or "",
                               max_chars=self.config.data.max_chars)
    return strict.tables_for(self.vocab, self.vocab_size, steps, form=s.form, strict_=s.strict,
                             constrained=s.constrained, template=s.template,
                             rhyme_group=s.rhyme_group, acrostic=s.acrostic,
                             prime=opening or "", rhyme=s.rhyme,
                             max_chars=self.config.data.max_chars)

  def han_mask(self) -> np.ndarray:
    v = self.vocab
    han = np.zeros(self.vocab_size, bool)
    han[v.char0:v.size] = [text.is_han(c) for c in v.chars]
    return han

  def prompt(self, num):
    """[num, 3] BOS FORM AUTHOR of the sample settings."""
    s, v = self.config.sample, self.vocab
    name = s.tune if s.form == "ci" else s.author     # a ci's control token is its tune
    author = v.author_token(name) if name else text.ANY_AUTHOR
    return jnp.tile(jnp.asarray([[text.BOS, text.FORM0 + text.FORMS.index(self.form_token), author]],
                                jnp.int32), (num, 1))

  @property
  def form_token(self) -> str:
    """The FORM a sample is conditioned on: the form asked, "other" for a ci."""
    return "other" if self.config.sample.form == "ci" else self.config.sample.form

  def decode_tables(self, state, seed, prompt, arrays):
    """tokens [B, T] of one jitted KV-cache decode under a Tables' arrays (jax values: the
    exported sampler's inputs)."""
    s = self.config.sample
    params, prefix = self.model_params(state)
    prefix = None if prefix is None else cast_floating(prefix, self.compute_dtype)
    arrays, key = tuple(jnp.asarray(a) for a in arrays), jax.random.key(seed)
    if self.plan:
      prompt = self.planned(self.model(params), prompt, key, arrays, prefix)
    return strict.constrained_sample(
        self.model(params), prompt, key, arrays, self.han_mask(), temperature=s.temperature,
        top_p=s.top_p, prefix=prefix)

  def planned(self, model, prompt, key, arrays, prefix):
    """[B, 5]: the prompt and each poem's plan (rhyme group, tonal template): what the
    decoding enforces (strict or --rhyme: the group and template `strict.constrained_sample`
    draws), else the model's own choice, drawn at the sampling temperature (per-row keys:
    rows do not depend on B)."""
    tone, ok, rhyme_pos, _, group_ok, _ = arrays
    kind, group = strict.draw(ok, group_ok, jax.random.fold_in(key, 7), prompt.shape[0])
    v0 = self.vocab.size
    for i, (start, n, forced, enforced) in enumerate((
        (v0, text.PLAN_GROUPS, group, rhyme_pos.any()),
        (v0 + text.PLAN_GROUPS, text.PLAN_KINDS, kind, jnp.any(tone != tone[:1])))):
      drawn = self._draw_plan(model(prompt, prefix=prefix)[:, -1], start, n,
                              jax.random.fold_in(key, 11 + i))
      tok = jnp.where(enforced, start + forced, drawn)
      prompt = jnp.concatenate([prompt, tok[:, None]], 1)
    return prompt

  def _draw_plan(self, logits, start: int, n: int, key):
    """[B] a token in start..start+n-1 from `logits` [B, V] at the sampling temperature."""
    ids = jnp.arange(logits.shape[-1])
    logits = jnp.where((ids >= start) & (ids < start + n), logits.astype(jnp.float32), -jnp.inf)
    t = self.config.sample.temperature
    if t == 0:
      return jnp.argmax(logits, -1).astype(jnp.int32)
    return jax.vmap(lambda r, lg: jax.random.categorical(jax.random.fold_in(key, r), lg / t))(
        jnp.arange(logits.shape[0]), logits).astype(jnp.int32)

  def sample(self, state, seed, num, opening=None):
    """{"tokens": [num, steps] (EOS, then PAD), "form": [num]}: poems with sample.form's
    control token, decoded under its masks (`tables`)."""
    self.check_sample(opening)      # at trace time: before anything compiles
    prompt = self.prompt(num)
    toks = self.decode_tables(state, seed, prompt, self.tables(opening).arrays())
    return {"tokens": toks, "form": jnp.full((num,), text.FORMS.index(self.form_token), jnp.int32),
            "control": prompt[:, 2]}

  # --- export --------------------------------------------------------------------------
  @property
  def export_steps(self) -> int:
    """Rows of the exported sampler's tables: the longest form (qilu, 64 + EOS) or poem."""
    return max(self.config.data.max_chars, len(text.template("qilu"))) + 1

  def sampler(self, state):
    t, v = self.export_steps, self.vocab_size
    s = self.config.sample
    return Sampler(
        fn=lambda seed, prompt, *arrays: self.decode_tables(state, seed, prompt, arrays),
        inputs=(("seed", "int32", (), "random seed (run.py sample --seed)"),
                ("prompt", "int32", ("B", 3), f"BOS={text.BOS}, the form token (FORM0={text.FORM0}"
                 f" + index in {list(text.FORMS)}), the author token (ANY_AUTHOR={text.ANY_AUTHOR})"),
                ("tone", "bool", (4, t, v), "the tokens allowed at each step under each of the 4 "
                 "templates (first verse A, B, C, D): poetry.npz's <form>/<decoding>/tone"),
                ("template_ok", "bool", (4,), "the templates each poem may draw"),
                ("rhyme_pos", "bool", (4, t), "the rhyme positions of each template"),
                ("groups", "bool", (30, v), "the characters of the 30 平聲 groups of the 平水韻"),
                ("group_ok", "bool", (30,), "the groups each poem may rhyme in"),
                ("no_repeat", "bool", (), "avoid repeated characters and rhymes (strict)")),
        outputs=(("tokens", "int32", ("B", t), f"characters from token {self.vocab.char0} "
                  f"(poetry.npz's chars), EOS={text.EOS} ends the poem, PAD={text.PAD} after"),),
        notes=(f"KV-cache poetry decoder with the run's temperature {s.temperature} and top_p "
               f"{s.top_p}; the masks of every form for strict and template decoding are in "
               "poetry.npz (an acrostic or a prime: set those steps' rows to the character "
               "alone). With the tables and prompt `run.py sample --seed=S --num=B` uses, the "
               "tokens equal its poems"))

  def export_files(self) -> dict:
    """{"poetry.npz": the vocabulary and the masks of each form's strict and template
    decodings (what the exported sampler takes), for a process without artjax}."""
    import io
    out = {"chars": np.asarray(self.vocab.chars), "authors": np.asarray(self.vocab.authors or ("",)),
           "char0": np.int32(self.vocab.char0), "forms": np.asarray(text.FORMS)}
    old = {k: self.config.sample[k] for k in ("form", "strict", "constrained", "rhyme")}
    try:
      for form in () if self.tunes else text.SHAPES:     # a model of ci: its tunes below
        for name, strict_ in (("strict", True), ("template", False)):
          self.config.sample.update(form=form, strict=strict_, constrained=True, rhyme=False)
          for key, arr in zip(("tone", "template_ok", "rhyme_pos", "groups", "group_ok",
                               "no_repeat"), self.tables(steps=self.export_steps).arrays()):
            out[f"{form}/{name}/{key}"] = arr
    finally:
      self.config.sample.update(old)
    if self.tunes:           # a model of ci: its tunes, from which a request's tables are built
      out["ci_tunes"] = np.asarray(json.dumps([dataclasses.asdict(t) for t in self.tunes.values()],
                                              ensure_ascii=False))
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    return {"poetry.npz": buf.getvalue()}

  def read_opening(self, prime: str):
    """--prime is text (the poem's first characters), not a file."""
    return prime

  def decode(self, tokens) -> list[str]:
    return [self.vocab.decode(row) for row in np.asarray(tokens)]

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    return poetry_report.evaluate_poetry(self, state, workdir, num or 32, seed)

  def check_grid(self, grid):
    calligraphy.find_font()

  def write_samples(self, samples, out, grid=None):
    """UTF-8 text: one verse per line, poems separated by blank lines; `grid`: the poems as
    calligraphy sheets in one PNG (artjax.poetry.calligraphy)."""
    bodies = self.decode(samples["tokens"])
    if self.config.sample.form == "ci":
      self._write_ci(bodies, samples["control"], out, grid)
      return
    if grid:
      forms = [text.FORMS[int(f)] for f in np.asarray(samples["form"])]
      calligraphy.write_sheets(bodies, forms, grid)
    poems = []
    for body in bodies:
      lines, cur = [], ""
      for ch in body:
        cur += ch
        if ch in VERSE_END:
          lines.append(cur)
          cur = ""
      poems.append("\n".join(lines + ([cur] if cur else [])))
    with open(out, "w", encoding="utf-8") as f:
      f.write("\n\n".join(poems) + "\n")

  def _write_ci(self, bodies, control, out, grid=None):
    """Each ci as `# tune` then a line per stanza (a user's text corpus reads it back)."""
    v = self.vocab
    names = [v.authors[t - text.AUTHOR0] if text.AUTHOR0 <= t < v.char0 else ""
             for t in np.asarray(control).tolist()]
    if grid:
      calligraphy.write_sheets(bodies, ["ci"] * len(bodies), grid,
                               titles=[n or "無題" for n in names])
    with open(out, "w", encoding="utf-8") as f:
      f.write("\n\n".join((f"# {n}\n" if n else "") + b.strip(ci.BREAK)
                           for n, b in zip(names, bodies)) + "\n")
