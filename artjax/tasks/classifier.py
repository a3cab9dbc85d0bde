"""Supervised image classification (the evaluator network), run by the shared loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from artjax.tasks import datasets as data_lib
from artjax.engine import optim, parallel
from artjax.image import augment
from artjax.nn.classifier import MLPClassifier
from artjax.tasks.base import Task, split_rng


def to_unit(images_u8):
  """uint8 images -> float32 in [-1, 1] (the classifier's input space)."""
  return images_u8.astype(jnp.float32) * (2.0 / 255.0) - 1.0


class ClassifierTask(Task):
  eval_key = "val_error"

  def validate(self):
    c = self.config
    self._check_common()
    data_lib.check_dataset_name(c.data.name)
    optim.validate(c.optim)
    self.image_shape = data_lib.image_shape(c.data)
    self.num_classes = data_lib.num_classes(c.data)
    model = nnx.eval_shape(lambda: self.build(jax.random.key(0)))
    self.graphdef, _ = nnx.split(model)
    self.tx = optim.make_optimizer(c.optim, c.train.steps)

  def build(self, key):
    m = self.config.model
    return MLPClassifier(self.image_shape, self.num_classes, width=m.width, depth=m.depth,
                         dropout=m.dropout, rngs=nnx.Rngs(key))

  def describe(self):
    return f"classifier {self.config.model.width}x{self.config.model.depth} on {self.config.data.name}"

  def device_data(self):
    ds = data_lib.load(self.config.data)
    return {"train": {"images": ds.images("train"), "labels": ds.labels("train")},
            "val_images": ds.images("validation"), "val_labels": ds.labels("validation")}

  def init_state(self, seed):
    k_model, k_run = jax.random.split(jax.random.key(seed))
    params = nnx.to_pure_dict(nnx.state(self.build(k_model)))
    return {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(k_run),
            "params": params, "opt": self.tx.init(params)}

  def apply(self, params, images_u8, **kw):
    return nnx.merge(self.graphdef, params)(to_unit(images_u8), **kw)

  def features(self, params, images_u8):
    return nnx.merge(self.graphdef, params).features(to_unit(images_u8))

  def pixel_features(self, params, x):
    """Features of float images in [-1, 1] (differentiable: perceptual losses)."""
    return nnx.merge(self.graphdef, params).features(x)

  def _augment(self, key, x):
    """Random integer shifts of up to `data.shift` pixels (zero padded)."""
    return augment.random_shift(key, x, self.config.data.shift)

  def train_step(self, state, data):
    b = self.config.train.batch_size
    rng, (k_idx, k_aug, k_drop) = split_rng(state["rng"], 4)
    idx = jax.random.randint(k_idx, (b,), 0, data["train_size"])
    train = data["train"]
    x, y = parallel.shard_batch((self._augment(k_aug, train["images"][idx]), train["labels"][idx]))

    def loss_fn(p):
      logits = self.apply(p, x, train=True, rng=k_drop)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt = self.tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return dict(state, step=state["step"] + 1, rng=rng, params=params, opt=opt), {
        "loss": loss, "train_acc": acc}

  def evaluate(self, state, data):
    logits = self.apply(state["params"], data["val_images"])
    return {"val_error": 1.0 - jnp.mean(jnp.argmax(logits, -1) == data["val_labels"])}
