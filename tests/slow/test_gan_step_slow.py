"""The long (make test-slow) tests of unit/test_gan_step.py."""

import pytest
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from artjax.tasks import build_task
from artjax.tasks.gan import d_loss_fn, g_loss_fn
from helpers import small_config
from test_gan_step import _check_step  # noqa: F401


@pytest.mark.slow   # about 6 s: runs in make test-slow (make test keeps under 5 minutes)
def test_step_gradients_exact_with_diffaugment():
  # The same augmentation policy on real and fake, in the D and the G update, and the
  # generator's gradient flows through the augmentation.
  _check_step(True, 0.0, "translation,cutout,color")
