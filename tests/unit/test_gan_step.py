"""The GAN losses and the gradients of one step, checked against independent computations."""

import pytest
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax.tasks import build_task
from artjax.tasks.gan import d_loss_fn, g_loss_fn
from helpers import small_config


def test_losses_match_hand_computed_bce():
  real = jnp.array([2.0, -1.0, 0.5])
  fake = jnp.array([-3.0, 0.0])
  p_real = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))
  p_fake = 1 / (1 + np.exp(-np.array([-3.0, 0.0])))
  want_d = -np.mean(np.log(p_real)) - np.mean(np.log(1 - p_fake))
  want_g = -np.mean(np.log(p_fake))
  np.testing.assert_allclose(d_loss_fn(real, fake), want_d, rtol=1e-6)
  np.testing.assert_allclose(g_loss_fn(fake), want_g, rtol=1e-6)
  # D(x)=0.5 everywhere: both losses are log 2 per term.
  np.testing.assert_allclose(d_loss_fn(jnp.zeros(4), jnp.zeros(4)), 2 * np.log(2), rtol=1e-6)


def _sgd_task(conditional, r1=0.0, policy=""):
  c = small_config()
  c.model.conditional = conditional
  c.gan.update(ema_decay=0.0, r1_gamma=r1, diffaugment=policy)
  c.optim.update(name="sgd", lr=1.0, b1=0.0, weight_decay=0.0)
  return build_task(c)


def _check_step(conditional, r1, policy=""):
  """With SGD(lr=1), the step's updates must be exactly minus the true gradients."""
  from artjax.image.augment import diff_augment
  task = _sgd_task(conditional, r1, policy)
  state = jax.jit(task.init_state, static_argnums=0)(0)
  rng = np.random.default_rng(0)
  data = {"train": {"images": jnp.asarray(rng.integers(0, 256, (50, 8, 8, 1)), jnp.uint8),
                    "labels": jnp.asarray(rng.integers(0, 10, (50,)), jnp.int32)},
          "train_size": jnp.int32(50)}
  new, _ = jax.jit(task.train_step)(state, data)

  # Independent reference: redraw the same batch and noise, differentiate the losses (the
  # augmentations themselves are checked against numpy in test_diffaugment_against_numpy).
  from artjax.tasks.base import split_rng
  _, (k_idx, k_z, k_aug_d, k_aug_g) = split_rng(state["rng"], 5)
  k_real, k_fake = jax.random.split(k_aug_d)
  aug = lambda k, x: diff_augment(k, x, policy, task.pixel_range)
  idx = jax.random.randint(k_idx, (32,), 0, 50)
  real = aug(k_real, task._to_pixels(data["train"]["images"][idx]))
  labels = data["train"]["labels"][idx] if conditional else None
  z = jax.random.normal(k_z, (32, task.latent_dim))
  G = lambda gp: nnx.merge(task.g_def, gp)(z, labels)
  D = lambda dp, x: nnx.merge(task.d_def, dp)(x, labels)

  def d_total(dp):
    fake = aug(k_fake, jax.lax.stop_gradient(G(state["g"])))
    loss = (jnp.mean(-jnp.log(jax.nn.sigmoid(D(dp, real)))) +
            jnp.mean(-jnp.log(1 - jax.nn.sigmoid(D(dp, fake)))))
    if r1:
      gx = jax.grad(lambda x: jnp.sum(D(dp, x)))(real)
      loss = loss + 0.5 * r1 * jnp.mean(jnp.sum(gx ** 2, axis=(1, 2, 3)))
    return loss

  d_grad = jax.jit(jax.grad(d_total))(state["d"])     # eager: op by op, several times slower
  assert_update_is_minus(state["d"], new["d"], d_grad)
  d_want = jax.tree.map(lambda p, g: p - g, state["d"], d_grad)

  g_grad = jax.jit(jax.grad(lambda gp: jnp.mean(
      -jnp.log(jax.nn.sigmoid(D(d_want, aug(k_aug_g, G(gp))))))))(state["g"])
  assert_update_is_minus(state["g"], new["g"], g_grad)
  assert int(new["step"]) == 1


def assert_update_is_minus(old, new, grad):
  """new - old == -grad leaf by leaf (the same leaves, by path), to 1e-3 of the leaf's largest
  gradient plus the float32 rounding of `old - grad` (relative to the gradient, not the weight)."""
  fo, fn, fg = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (old, new, grad))
  assert [p for p, _ in fo] == [p for p, _ in fn] == [p for p, _ in fg]
  for (path, o), (_, n), (_, g) in zip(fo, fn, fg):
    o, n, g = (np.asarray(a, np.float64) for a in (o, n, g))
    assert np.abs(g).max() > 0, jax.tree_util.keystr(path)
    tol = 1e-3 * np.abs(g).max() + 2.4e-7 * (np.abs(o).max() + np.abs(g).max())
    np.testing.assert_allclose(n - o, -g, rtol=0, atol=tol, err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow   # 3.6 s; the conditional R1 case stays fast: make test-slow
def test_step_gradients_exact_unconditional():
  _check_step(False, 0.0)


def test_step_gradients_exact_conditional_r1():
  _check_step(True, 5.0)


def test_ema_tracks_generator():
  c = small_config()
  c.gan.ema_decay = 0.9
  task = build_task(c)
  state = jax.jit(task.init_state, static_argnums=0)(0)
  data = {"train": {"images": jnp.zeros((10, 8, 8, 1), jnp.uint8),
                    "labels": jnp.zeros((10,), jnp.int32)}, "train_size": jnp.int32(10)}
  new, _ = jax.jit(task.train_step)(state, data)
  d0 = 1.0 / 10.0  # warm-up decay at step 0: min(0.9, 1/10)
  for e, g0, g1 in zip(jax.tree.leaves(new["ema"]), jax.tree.leaves(state["g"]),
                       jax.tree.leaves(new["g"]), strict=True):
    np.testing.assert_allclose(e, d0 * g0 + (1 - d0) * g1, rtol=1e-5, atol=1e-7)


def _shifted(x, dy, dx):
  """numpy: x [H, W, C] shifted by (dy, dx), out[i, j] = x[i + dy, j + dx], zero outside."""
  h, w = x.shape[:2]
  out = np.zeros_like(x)
  ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
  out[ys, xs] = x[ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx]
  return out


def test_diffaugment_against_numpy():
  """Each augmentation does what it says, checked by direct numpy reasoning (never by
  calling diff_augment again): translation is a zero-filled shift of at most 1/8 of the side,
  cutout zeroes one half-side square (clipped at the borders) and nothing else, colour
  changes values only through the per-image brightness/saturation/contrast maps."""
  from artjax.image.augment import diff_augment
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (64, 16, 16, 3)).astype(np.float32)
  key = jax.random.key(3)
  t = np.asarray(diff_augment(key, jnp.asarray(x), "translation"))
  shifts = []
  for a, b in zip(x, t):
    found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
             if np.allclose(_shifted(a, dy, dx), b, atol=1e-6)]
    assert found, "not a zero-filled shift of at most 2 pixels"
    shifts.append(found[0])
  assert len(set(shifts)) > 10                                  # shifts vary per image

  c = np.asarray(diff_augment(key, jnp.asarray(x), "cutout"))
  for a, b in zip(x, c):
    zeroed = ~np.isclose(a, b).all(-1)
    assert np.all(b[zeroed] == 0) and np.array_equal(a[~zeroed], b[~zeroed])
    ys, xs = np.nonzero(zeroed)
    assert zeroed.any() and zeroed.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # a rectangle
    assert np.ptp(ys) + 1 <= 8 and np.ptp(xs) + 1 <= 8
    assert (np.ptp(ys) + 1 == 8 or ys.min() == 0 or ys.max() == 15)  # full side unless clipped

  col = np.asarray(diff_augment(key, jnp.asarray(x), "color"), np.float64)
  x64 = x.astype(np.float64)
  for a, b in zip(x64, col):
    da, db = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    k = (da * db).sum() / (da * da).sum()                       # saturation x contrast
    np.testing.assert_allclose(db, k * da, atol=1e-5)
    assert 0.0 <= k <= 3.0
    slope, icept = np.polyfit(a.mean(-1).ravel(), b.mean(-1).ravel(), 1)   # contrast
    np.testing.assert_allclose(b.mean(-1), slope * a.mean(-1) + icept, atol=1e-5)
    assert 0.5 <= slope <= 1.5
