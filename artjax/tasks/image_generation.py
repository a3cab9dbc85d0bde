"""The generator capability: what every image generator offers once it can draw.

A task class that mixes in `ImageGeneration` and provides the small generator protocol

    generate(params, z [B, latent_dim], labels [B] | [B, classes] | None) -> images [B, H, W, C]
        in `pixel_range` (pure);
    sampling_params(state) -> the params `generate` draws with (an EMA copy, merged LoRA);
    latent_dim, conditional, num_classes, image_shape, pixel_range (set by `validate`);

gets, with no further code: sampling (`sample`, the summary grid, `class_index`), exported
and served samplers (`sampler`, `row_sampler`: a request's rows merged with others',
`walk_sampler`: /v1/animate), latent walks for `run.py animate` (`keyframes`, `render` in z),
the user's own latents (`run.py sample --latents`), sample files and grids, and `run.py eval`'s
report (artjax.tasks.image_report). A model with more latent spaces (StyleGAN's w) overrides
`keyframes`/`render`/`given_latents` and declares them (`animation_spaces`, `latent_keys`);
inversion and projection build on `generate` the same way (GANTask.repair, StyleGANTask.project).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.tasks.rows import normal_rows
from artjax.engine.writers import image_grid, save_png
from artjax.image import animation
from artjax.tasks import image_report
from artjax.tasks.base import Sampler

#: the fixed samples of the summary grid (the same every time, so grids compare across steps)
GRID_SEED_OFFSET = 12345


class ImageGeneration:
  """Sampling, walks, exported samplers and reports over the generator protocol (see the
  module docstring). Mixed in before `Task`."""

  sample_kind = "images"

  def _to_pixels(self, images_u8):
    lo, hi = self.pixel_range
    return images_u8.astype(jnp.float32) * ((hi - lo) / 255.0) + lo

  def _to_uint8(self, x):
    lo, hi = self.pixel_range
    return jnp.clip(jnp.round((x.astype(jnp.float32) - lo) * (255.0 / (hi - lo))), 0, 255).astype(jnp.uint8)

  def _images(self, params, seed, labels, num):
    z = jax.random.normal(jax.random.key(seed), (num, self.latent_dim))
    return self._to_uint8(self.generate(params, z, labels if self.conditional else None))

  def class_index(self, name: str) -> int:
    """The class `name` (a class name of the dataset, or its index) of a conditional model:
    the "opening" of its samples (`run.py sample --class=NAME`)."""
    if not self.conditional:
      raise ConfigError("--class: this generator is unconditional (it draws every class)")
    from artjax.tasks import datasets as data_lib
    names = tuple(data_lib.load(self.config.data).class_names)
    if name in names:
      return names.index(name)
    if name.isdigit() and int(name) < self.num_classes:
      return int(name)
    raise ConfigError(f"--class={name!r}: not a class of {self.config.data.name} (classes: "
                      f"{', '.join(names) if names else f'0..{self.num_classes - 1}'})")

  # --- animation (run.py animate): latents in, frames out --------------------------------
  animation_spaces = ("z",)

  def keyframes(self, state, z, labels, space="z"):
    """The latents to interpolate between in `space` for keyframes z [K, D] (z itself)."""
    return z

  def render(self, state, latents, labels, space="z"):
    """uint8 frames of latents [B, D] in `space`; labels: classes [B], class weights
    [B, classes] (morphs) or None. One compiled program per batch size."""
    labels = labels if self.conditional else None
    return self._to_uint8(self.generate(self.sampling_params(state), latents, labels))

  #: what a `run.py sample --latents` file may hold besides labels / c
  latent_keys = ("z",)
  noise_modes = ("const",)          # --noise_mode values (a DCGAN-class G has no noise)

  def latent_shapes(self, key: str) -> list:
    """The per-item shapes a --latents array `key` (one of latent_keys) may have."""
    return [(self.latent_dim,)]

  def given_latents(self, state, latents: dict, noise_mode="const", seed=0):
    """Images in `pixel_range` for the user's own latents: {"z": [N, latent_dim], "labels":
    [N] int or [N, classes] class weights (conditional models)}."""
    del noise_mode, seed   # a DCGAN-class generator has no noise inputs
    labels = latents.get("labels") if self.conditional else None
    return self.generate(self.sampling_params(state), latents["z"], labels)

  def sample(self, state, seed, num, opening=None):
    """`num` images, classes in turn (conditional G), or all of class `opening` if given."""
    labels = (jnp.arange(num, dtype=jnp.int32) % self.num_classes) if self.conditional else None
    if self.conditional and opening is not None:
      labels = jnp.full((num,), opening, jnp.int32)
    out = {"images": self._images(self.sampling_params(state), seed, labels, num)}
    if self.conditional:
      out["labels"] = labels
    return out

  def row_sampler(self, state, max_num: int):
    """For a service merging requests: fn(seeds[B], rows[B], labels[B]) -> images, row r being
    image rows[r] (< max_num) of `sample(state, seeds[r], n)` for any n > rows[r] (each row's
    latent alone: `artjax.tasks.rows.normal_rows`). An unconditional model ignores the labels."""
    params = self.sampling_params(state)

    def fn(seeds, rows, labels):
      z = normal_rows(seeds, rows, self.latent_dim)
      return self._to_uint8(self.generate(params, z, labels if self.conditional else None))
    h, w, ch = self.image_shape
    return Sampler(
        fn=fn,
        inputs=(("seeds", "int32", ("B",), "the random seed of each row's request"),
                ("rows", "int32", ("B",), f"the row's index in its request, 0..{max_num - 1}"),
                ("labels", "int32", ("B",), "class of each image (ignored if unconditional)")),
        outputs=(("images", "uint8", ("B", h, w, ch), "images, pixel values 0..255"),),
        notes=f"rows of `run.py sample --seed=S` for any mix of seeds; at most {max_num} rows "
              "per seed")

  def walk_sampler(self, state, keyframes: int = 4):
    """For the service's /v1/animate: fn(seed, frames, label, idx[B]) -> frames idx of the
    looping slerp walk in z through `keyframes` latents drawn from `seed` that
    `run.py animate --seed=S --keyframes=K` renders for a 1x1 grid of `frames` frames (its
    label is class 0; here any class), at the model's resolution."""
    def fn(seed, frames, label, idx):
      z = jax.random.normal(jax.random.key(seed), (1, keyframes, self.latent_dim))[0]
      lab = jnp.full((keyframes,), label, jnp.int32) if self.conditional else None
      keys = self.keyframes(state, z, lab, "z")
      lat = animation.walk(keys, frames, "slerp", idx)
      return self.render(state, lat, jnp.full(idx.shape, label, jnp.int32) if self.conditional else None, "z")
    h, w, ch = self.image_shape
    return Sampler(
        fn=fn,
        inputs=(("seed", "int32", (), "random seed of the keyframes (run.py animate --seed)"),
                ("frames", "int32", (), "the video's length in frames (seconds x fps)"),
                ("label", "int32", (), "the class of every frame (ignored if unconditional)"),
                ("idx", "int32", ("B",), "which frames to render, 0..frames-1")),
        outputs=(("images", "uint8", ("B", h, w, ch), "frames, pixel values 0..255"),),
        notes=f"a looping slerp walk through {keyframes} keyframes in z")

  def sampler(self, state):
    params = self.sampling_params(state)
    h, w, ch = self.image_shape
    what = (f"class of each image, 0..{self.num_classes - 1}" if self.conditional else
            "ignored (unconditional model): only its length B, the number of images, counts")
    return Sampler(
        fn=lambda seed, labels: self._images(params, seed, labels, labels.shape[0]),
        inputs=(("seed", "int32", (), "random seed (run.py sample --seed)"),
                ("labels", "int32", ("B",), what)),
        outputs=(("images", "uint8", ("B", h, w, ch), "images, pixel values 0..255"),),
        notes=("image i is drawn from latent row i of jax.random.normal(key(seed), (B, "
               f"{self.latent_dim})); with labels = arange(B) % {self.num_classes} the result "
               "equals the images of `run.py sample --seed=S --num=B`"))

  def grid_columns(self):
    return self.num_classes if self.conditional else None

  def summary_images(self, state):
    n = self.config.train.grid_size
    return {"samples": self.sample(state, self.config.seed + GRID_SEED_OFFSET, n)["images"]}

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    return image_report.report_images(self, state, num, seed, workdir, suffix, checkpoint,
                                      **(options or {}))

  def write_samples(self, samples, out, grid=None):
    super().write_samples(samples, out)
    if grid:
      save_png(grid, image_grid(np.asarray(samples["images"]), ncol=self.grid_columns(),
                                scale=max(1, 64 // self.image_shape[0])))
