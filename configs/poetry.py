# python run.py train --config=configs/poetry.py --workdir=runs/poetry        (about 15 min)
#   default: the rhyme plan, 3,000 steps (the recipe whose samples rhyme); noplan: without the
#   plan, 1,000 steps (the earlier default); plan: the plan on the 1,000-step schedule;
#   ci: the Song ci with their tune as the control token (data name ci)
# python run.py sample --workdir=runs/poetry --num=8 --form=wujue --acrostic=春夏秋冬 --out=poems.txt
# python run.py eval --workdir=runs/poetry
# Fine-tuning to one poet (full | lora | prefix), from a pretrained run:
#   python run.py finetune --config=configs/poetry.py:lora_libai --init_from=runs/poetry --workdir=DIR
# Option `smoke`: a tiny model, a seconds-long run.
"""Character-level Transformer on Tang poems (the chinese-poetry collection)."""

from configs import common

VARIANTS = ("default", "noplan", "regulated", "plan", "ci", "full_libai", "lora_libai",
            "prefix_libai")


def get_config(arg: str = "default"):
  name, opts = common.parse_arg(arg, "default", VARIANTS)
  # name: poetry (the Tang poems), ci (the Song ci: the control token is the tune, and
  # num_authors the tunes with one) or text:PATH (your poems: a UTF-8 file or a folder of .txt,
  # a blank line between poems, an optional first line `# title`; artjax.poetry.data.user_text);
  # vocab_from: the corpus whose training characters form the vocabulary ("" = this one; a
  # fine-tuning run takes its pretrained run's); source_dir: a chinese-poetry checkout or unpacked npm package ("" = fetch it with npm
  # into the data dir once); vocab_chars: the most frequent training characters kept (seen
  # >= min_count times; others are UNK); num_authors: poets with their own control token;
  # max_chars: longest poem body trained on; author: train on one poet's poems only;
  # regulated_only: train only on regulated-form poems that pass the 平水韻 rhyme and tone
  # tests (artjax.poetry.pingshui; validation and test splits unchanged); rhyme_plan: two
  # tokens before each poem, its 平水韻 rhyme group and tonal template, which the model learns
  # to choose first and its samples then follow (artjax.poetry.text; docs/poetry.md).
  c = common.base("poetry", {"name": "poetry", "source_dir": "", "vocab_chars": 5000,
                             "min_count": 2, "num_authors": 64, "max_chars": 64, "author": "",
                             "regulated_only": False, "rhyme_plan": False, "vocab_from": ""})
  c.model = common.ConfigDict({"name": "transformer", "d_model": 192, "num_layers": 4,
                               "num_heads": 4, "d_ff": 768, "dropout": 0.1, "cond_dropout": 0.2,
                               "remat": "none"})
  c.optim = common.optim(name="adamw", lr=2e-3, b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.05,
                         schedule="cosine", warmup_steps=100, end_lr_frac=0.05, clip_norm=1.0)
  # bf16 products (fp32 accumulation): about 0.55 s per step on 2 cores, 1000 steps ~ 10 min
  c.train.update(steps=1000, batch_size=64, steps_per_dispatch=50, log_every=100,
                 ckpt_every=500, keep=2, sample_every=0, eval_every=500, dtype="bf16")
  # form: wujue | qijue | wulu | qilu (the control token and, when constrained, the template
  # decoding follows; unconstrained also: other; ci for a model of ci; auto: wujue for Tang
  # poems, ci for ci, other for text:); acrostic: each verse's first character;
  # tune (ci): the tune's control token and, constrained, its shape (clause lengths, stops,
  # stanza break; strict: also its rhyme positions in one 词林正韵 unit; artjax.poetry.ci);
  # author: a poet's control token ("" = any); rhyme: the even verses end on level-tone
  # characters of one rhyme group, drawn per poem (constrained decoding only).
  # strict: every poem passes the 平水韻 rhyme and tone tests (artjax.poetry.strict), of a
  # template (平起 | 仄起 | 平起首句入韻 ... ; "" = drawn per poem) and a rhyme group (e.g.
  # 上平聲一東; "" = drawn per poem).
  c.sample = common.ConfigDict({"form": "auto", "constrained": True, "temperature": 1.0,
                                "top_p": 0.9, "acrostic": "", "author": "", "rhyme": False,
                                "strict": False, "template": "", "rhyme_group": "", "tune": ""})
  # LoRA on attention, MLP and the output head (3.8% of the weights): the head is where a
  # poet's vocabulary lives (docs/poetry.md: 0.91 attribution vs 0.36 without it)
  c.finetune.update(lora_rank=8, lora_alpha=16.0, lora_targets="attn|mlp|head", prefix_len=16)
  if name == "regulated":      # issue #31's data-selection experiment
    c.data.regulated_only = True
  elif name in ("plan", "default"):   # each poem opens with its rhyme group and tonal template
    c.data.rhyme_plan = True
    if name == "default":      # the measured best recipe (docs/poetry.md: rhyme 0.88 of held-out)
      c.train.update(steps=3000, ckpt_every=1000, eval_every=1000)
  elif name == "ci":           # Song ci, the tune as the control token (docs/poetry.md)
    c.data.update(name="ci", num_authors=200, max_chars=144)
    c.sample.update(form="ci", tune="浣溪沙")
  elif name != "noplan":       # fine-tuning: the plan setting follows the pretrained run
    c.finetune.method = name.split("_")[0]
    c.data.author = "李白"
    c.sample.author = "李白"
    lr = {"full_libai": 2e-4, "lora_libai": 2e-3}.get(name, 1e-3)
    c.optim.update(lr=lr, warmup_steps=50, weight_decay=0.0)
    c.train.update(steps=600, eval_every=100, ckpt_every=300)
  if "smoke" in opts:
    c.model.update(d_model=32, num_layers=2, num_heads=2, d_ff=64)
    c.data.update(vocab_chars=400, num_authors=4, max_chars=32)
    common.smoke(c, steps=40, batch_size=8)
  return c
