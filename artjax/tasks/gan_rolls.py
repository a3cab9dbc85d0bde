"""The piano-roll GAN: the painting GAN on the chorales drawn as piano rolls (pictures of
voices x time, `data.name` one of artjax.music.data.ROLL_DATASETS). What it adds to the image
GAN is what a listener needs: samples written as MIDI and audio (`sample.instruments`,
`sample.audio`), and the report's musical measures beside the picture metrics."""

from __future__ import annotations

import os

import numpy as np

from artjax.music import data as music_data
from artjax.tasks import image_report
from artjax.tasks.gan import GANTask


class PianoRollGANTask(GANTask):

  @classmethod
  def takes(cls, config) -> bool:
    """Piano rolls (the chorales as pictures) are drawn by the piano-roll GAN."""
    return config.data.name in music_data.ROLL_DATASETS

  @property
  def sample_options(self):
    """--class, --latents; with a `sample` block: --instruments and --audio too."""
    return GANTask.sample_options + (("instruments", "audio") if self._listenable() else ())

  def _listenable(self):
    c = self.config
    return "sample" in c and "audio" in c.sample

  def validate(self):
    super().validate()
    if self._listenable():
      from artjax.music import render
      render.check_sample(self.config.sample)

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    """The image report in the evaluator's features (not ImageNet's: rolls are not photos),
    plus each class's musical measures."""
    return image_report.report_images(self, state, num, seed, workdir, suffix, checkpoint,
                                      pictures=False, rolls=True, **(options or {}))

  def write_samples(self, samples, out, grid=None):
    """The samples' arrays (and grid), and each roll as MIDI + audio in OUT_midi/."""
    super().write_samples(samples, out, grid)
    from artjax.music import render
    folder = os.path.splitext(out)[0] + "_midi"
    os.makedirs(folder, exist_ok=True)
    sm = self.config.sample if self._listenable() else {}
    for i, im in enumerate(np.asarray(samples["images"])):
      roll = (im[..., 0] >= 128).astype(np.uint8)
      render.save_piece(os.path.join(folder, f"sample_{i:03d}"), roll,
                        sm.get("instruments", "choir"), sm.get("audio", "wav"))
