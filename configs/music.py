# python run.py train --config=configs/music.py --workdir=runs/music
# Variants: default (= keynorm_every, the measured recipe that plays the mood asked: chorales
# moved to C, the mode token added at every position, half the windows opening a chorale),
# transposed (the earlier default: mode-conditional on chorales in their own keys, randomly
# transposed: the lowest test NLL, 4.66, but it follows the mode asked only 0.16-0.25 of the
# time), uncond (no control token), keynorm / keynorm_uncond (chorales moved to C), and fine-tuning an unconditional model to minor-mode chorales:
#   python run.py finetune --config=configs/music.py:prefix_minor --init_from=runs/music_uncond --workdir=DIR
#   python run.py finetune --config=configs/music.py:lora_minor   --init_from=runs/music_uncond --workdir=DIR
#   large: a 12 x 768 model on 1024-token windows meant for accelerators (FSDP over every
#   device, bf16 products, rematerialised blocks, 4-step gradient accumulation):
#   python run.py train --config=configs/music.py:large --workdir=DIR [--config.mesh.shape=fsdp=4,tensor=2]
# Option `smoke` (e.g. `:default,smoke`): a tiny Transformer, a seconds-long run.
"""Music Transformer configs (Bach chorales, JSB-like piano-roll frames)."""

from configs import common

VARIANTS = ("default", "transposed", "uncond", "keynorm", "keynorm_every", "keynorm_uncond", "prefix_minor",
            "lora_minor", "full_minor", "large")


def get_config(arg: str = "default"):
  name, opts = common.parse_arg(arg, "default", VARIANTS)
  # window: training example length in tokens (about 4.7 tokens per quarter-note frame);
  # transpose: random transposition of up to +-N semitones per example; mode: all|major|minor;
  # start_prob: share of windows that open at the chorale's first frame (else a random frame).
  # key_normalise: every chorale moved to the tonic C (needs transpose=0); samples are moved
  # to sample.tonic afterwards, so the mode token is the only key information the model needs.
  # name: chorales, or midi:PATH (a folder or .zip of your MIDI / MusicXML / ABC files, any
  # instruments and drums: artjax.tasks.midi) with tokenizer REMI | TSD | MIDILike (miditok)
  # and strict (refuse unreadable files instead of skipping them with a warning)
  c = common.base("music", {"name": "chorales", "window": 256, "transpose": 5, "mode": "all",
                            "start_prob": 0.0, "key_normalise": False, "tokenizer": "REMI",
                            "strict": False})
  # attn_chunks / attn_block: speed only, exact (causal query blocks; flash-style fp32
  # attention over that many (sequence, head) pairs at a time, 0 = XLA's batched products).
  # cond_every: the mode token's embedding is also added at every position (not only read
  # where it stands, at the start, where a long context can outweigh it)
  c.model = common.ConfigDict({"name": "transformer", "d_model": 128, "num_layers": 4,
                               "num_heads": 4, "d_ff": 512, "dropout": 0.2,
                               "conditional": True, "cond_dropout": 0.2, "cond_every": False,
                               "attn_chunks": 4, "attn_block": 16, "remat": "none"})
  c.optim = common.optim(name="adamw", lr=1e-3, b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.1,
                         schedule="cosine", warmup_steps=200, end_lr_frac=0.05, clip_norm=1.0)
  c.train.update(steps=2500, batch_size=16, steps_per_dispatch=50, log_every=100,
                 ckpt_every=1000, keep=2, sample_every=0, eval_every=500)
  # guidance: classifier-free guidance scale for the mode token (1 = plain conditional);
  # key_guidance: weight of key-profile steering towards (tonic, mode) (0 = off); tonic:
  # pitch class 0-11 (0 = C), -1 = the opening's lowest note, else random per sample;
  # max_tokens: cap on sampled tokens (0 = 8 per frame). instruments: General MIDI
  # instruments of soprano..bass (one name: every voice; e.g. violin,viola,cello,contrabass),
  # rendered by FluidSynth with the GM SoundFont (the built-in synthesiser when absent);
  # audio: wav | ogg | mp3; bpm: the rendering's tempo. mood: "VALENCE,AROUSAL" in [-1, 1]
  # each, mapped to the mode asked of the model, the tempo and the register
  # (artjax/music/mood.py; "" = off).
  c.sample = common.ConfigDict({"num_frames": 64, "temperature": 1.0, "top_p": 0.95,
                                "mode": "alternate", "max_tokens": 0, "guidance": 1.0,
                                "key_guidance": 0.0, "tonic": -1, "instruments": "choir",
                                "audio": "wav", "bpm": 80.0, "mood": ""})
  c.finetune.update(lora_rank=8, lora_alpha=16.0, lora_targets="attn|mlp", prefix_len=16)
  if name in ("uncond", "keynorm_uncond"):
    c.model.update(conditional=False, cond_dropout=0.0)
  if name.startswith("keynorm") or name == "default":
    # mood through the model: key-normalised chorales + mode token (default = keynorm_every,
    # the measured recipe that plays the mode asked: docs/music.md)
    c.data.update(key_normalise=True, transpose=0)
    if name in ("keynorm_every", "default"):   # and half the windows open a chorale
      c.model.cond_every = True
      c.data.start_prob = 0.5
  elif name in ("prefix_minor", "lora_minor", "full_minor"):
    c.model.update(conditional=False, cond_dropout=0.0)
    c.data.mode = "minor"
    c.finetune.method = name.split("_")[0]
    c.sample.mode = "minor"
    c.optim.update(lr=1e-3 if name != "full_minor" else 2e-4, warmup_steps=50, weight_decay=0.0)
    c.train.update(steps=600, eval_every=100, ckpt_every=300)
  elif name == "large":
    # attention: XLA's batched products (the blocked loop is for CPUs); remat "dots" keeps
    # the weight matmuls' outputs and recomputes the rest of each block in the backward pass.
    c.model.update(d_model=768, num_layers=12, num_heads=12, d_ff=3072, dropout=0.1,
                   attn_chunks=1, attn_block=0, remat="dots")
    c.data.window = 1024
    c.optim.update(lr=3e-4, warmup_steps=500, grad_accum=4)
    c.train.update(steps=20000, batch_size=64, dtype="bf16", steps_per_dispatch=100,
                   log_every=100, ckpt_every=1000, eval_every=1000)
    c.mesh.shape = "fsdp=-1"
  if "smoke" in opts:
    c.model.update(d_model=32, num_layers=2, num_heads=2, d_ff=64, dropout=0.1)
    c.data.window = 64
    c.sample.num_frames = 12
    common.smoke(c, steps=40, batch_size=8)
  return c
