# python run.py train --config=configs/music_gan.py --workdir=runs/music_gan
# python run.py sample --workdir=runs/music_gan --num=20 --out=runs/music_gan/samples.npz
#   (writes samples.npz, a PNG grid with --grid, and samples_midi/ with MIDI and WAV files)
# Variants: default (2 bars), seed (the seed's networks), bars4 (4 bars: chorale_rolls16),
# bars4c (4 bars, each chorale moved to C: chorale_rolls16c; follows the asked mode, docs/music.md),
# voices (bars4c drawn as four monophonic voices, a discriminator that also hears pitch
# classes: the music GAN to listen to, docs/music.md).
"""The seed's noise-to-music generator made real: 10-d noise -> a 2-bar piano-roll segment
(8 quarter-note frames x 88 keys), trained adversarially against real chorale segments by
the same GAN task as the paintings, conditioned on mode (major / minor)."""

from configs import common
from configs.evaluator import get_config as evaluator_config
from configs.gan import get_config as gan_config, shrink


def get_config(arg: str = "default"):
  name, opts = common.parse_arg(arg, "default", ("default", "seed", "bars4", "bars4c", "voices"))
  c = gan_config("digits")
  c.data.name = {"bars4": "chorale_rolls16", "bars4c": "chorale_rolls16c",
                 "voices": "chorale_rolls16c"}.get(name, "chorale_rolls")
  c.evaluator = evaluator_config(c.data.name)
  # tracks: model `tracks` draws that many monophonic lines (SATB voices: at most 4 notes a frame)
  # fold: model `tracks`' discriminator also sees the keys folded into 12 pitch classes (0 = off)
  c.model.update(name="tracks" if name == "voices" else "mlp", latent_dim=10, width=512,
                 depth=2, conditional=True, tracks=4, fold=0)
  c.gan.update(diffaugment="", ema_decay=0.999)
  # samples are also written as MIDI and audio: General MIDI instruments of soprano..bass
  # (run.py sample --instruments=...), audio wav | ogg | mp3 (--audio=ogg)
  c.sample = common.ConfigDict({"instruments": "choir", "audio": "wav"})
  if name == "voices":   # R1 keeps the discriminator from winning outright on binary rolls
    c.model.fold = 12
    c.gan.r1_gamma = 1.0
  c.train.update(steps=4000, batch_size=128, steps_per_dispatch=100, log_every=500,
                 ckpt_every=2000, sample_every=2000, eval_every=2000, grid_size=20)
  if name == "seed":   # the seed's exact networks (sigmoid MLPs), unconditional
    c.model.update(name="mlp_seed", latent_dim=10, width=256, conditional=False)
    c.gan.ema_decay = 0.0
    c.optim.update(name="adam", lr=2e-4, b1=0.9)
  if "smoke" in opts:
    shrink(c)
  return c
