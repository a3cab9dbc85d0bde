"""The projected GAN (configs/projected.py, artjax/image/models/projected.py): the pretrained
feature network and the random projections stay fixed and carry no optimizer state, the heads
and the generator learn, gradients reach the generator through the frozen features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artjax import ConfigError
from artjax.image import pretrained
from artjax.tasks.build import build_task
from configs.projected import get_config


def _task(**model):
  c = get_config("emoji32,smoke")
  c.model.update(model)
  return build_task(c)


def _data(task, n=16):
  rng = np.random.default_rng(0)
  h, w, ch = task.image_shape
  return {"train": {"images": jnp.asarray(rng.integers(0, 256, (n, h, w, ch)), jnp.uint8),
                    "labels": jnp.asarray(rng.integers(0, task.num_classes, n), jnp.int32)},
          "train_size": n}


def _leaves(tree):
  return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def initial():
  """(task, initial state), built once: building the projected pair eagerly compiles each of
  its ~130 initialisers (about 10 s here)."""
  task = _task()
  return task, task.init_state(0)


def test_frozen_parts_stay_fixed_and_the_rest_learns(initial):
  task, state = initial
  assert task.d_frozen == ("features", "ccm", "csm")
  lite = pretrained.weights("lite0")[1]
  np.testing.assert_array_equal(state["d"]["features"]["stem"]["kernel"], lite["stem"]["kernel"])
  before = jax.tree.map(np.asarray, state)
  # Adam keeps two moments of every trained weight and nothing for the frozen ones
  assert _leaves(state["d_opt"]) < 3 * task.num_params["d"] + 100
  assert task.num_params["d_frozen"] > 40 * task.num_params["d"]
  step = jax.jit(task.train_step)
  data = _data(task)
  for _ in range(2):
    state, m = step(state, data)
  assert all(np.isfinite(float(v)) for v in m.values())
  for part in task.d_frozen:
    jax.tree.map(np.testing.assert_array_equal, before["d"][part], state["d"][part])
  changed = lambda a, b: any(not np.array_equal(x, y) for x, y in
                             zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert changed(before["d"]["heads"], state["d"]["heads"])
  assert changed(before["g"], state["g"])


def test_the_discriminator_scores_images_and_passes_gradients_to_them(initial):
  task, state = initial
  x = jax.random.uniform(jax.random.key(1), (3,) + task.image_shape, minval=-1, maxval=1)
  labels = jnp.arange(3) % task.num_classes
  logits = jax.jit(task.discriminate)(state["d"], x, labels)   # eager: op by op, 10x slower
  assert logits.shape == (3,)
  gx = jax.jit(jax.grad(lambda x: jnp.sum(task.discriminate(state["d"], x, labels))))(x)
  assert float(jnp.abs(gx).max()) > 0


@pytest.mark.parametrize("key,value,match", [("scales", 5, "scales"), ("features", "lite9", "features"),
                                             ("feature_size", 16, "feature_size")])
def test_bad_projected_settings_are_one_error(key, value, match):
  with pytest.raises(ConfigError, match=match):
    _task(**{key: value})
