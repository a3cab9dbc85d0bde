"""The metrics mean what they say: checked on synthetic data and on real digits."""

import numpy as np
import pytest
import scipy.linalg

from artjax.evaluation import metrics


def test_frechet_distance_matches_scipy():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(400, 6)).astype(np.float32)
  b = (rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 1.0).astype(np.float32)
  mu_a, mu_b = a.mean(0), b.mean(0)
  sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  want = np.sum((mu_a - mu_b) ** 2) + np.trace(sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real)
  np.testing.assert_allclose(float(metrics.frechet_distance(a, b)), want, rtol=1e-3)
  assert abs(float(metrics.frechet_distance(a, a))) < 1e-3


def test_inception_score_bounds():
  onehot = np.eye(10)[np.arange(100) % 10]
  np.testing.assert_allclose(float(metrics.inception_score(onehot)), 10.0, rtol=1e-4)
  np.testing.assert_allclose(float(metrics.inception_score(np.tile(onehot[:1], (100, 1)))), 1.0,
                             rtol=1e-4)


def test_precision_recall_separate_collapse_from_diversity():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(600, 8))
  diverse = rng.normal(size=(600, 8))
  collapsed = rng.normal(size=(600, 8)) * 0.1            # one mode at the centre
  far = rng.normal(size=(600, 8)) + 6.0                   # off the data manifold
  p_d, r_d = metrics.precision_recall(real, diverse)
  p_c, r_c = metrics.precision_recall(real, collapsed)
  p_f, _ = metrics.precision_recall(real, far)
  assert p_d > 0.6 and r_d > 0.6
  assert p_c > 0.9 and r_c < 0.2
  assert p_f < 0.05
  _, cov_d = metrics.density_coverage(real, diverse)
  _, cov_c = metrics.density_coverage(real, collapsed)
  assert cov_d > 0.8 and cov_c < 0.3


@pytest.fixture(scope="module")
def digits_eval(data_dir):
  from helpers import digits_evaluator
  return digits_evaluator(data_dir)


def test_evaluator_is_accurate(digits_eval):
  assert digits_eval.test_accuracy > 0.95


@pytest.mark.slow   # 10 s: make test-slow
def test_degraded_images_rank_worse_than_real(digits_eval):
  from artjax.evaluation.images import image_metrics
  ds = digits_eval.dataset
  val = ds.images("validation")
  rng = np.random.default_rng(0)
  real = image_metrics(digits_eval, val, ds.labels("validation"))
  noise = image_metrics(digits_eval, rng.integers(0, 256, val.shape).astype(np.uint8))
  f = val.astype(np.float32)
  blur = (f + np.roll(f, 1, 1) + np.roll(f, -1, 1) + np.roll(f, 1, 2) + np.roll(f, -1, 2)) / 5
  blurred = image_metrics(digits_eval, blur.round().astype(np.uint8))
  single = image_metrics(digits_eval, np.repeat(val[:1], len(val), axis=0))
  for bad in (noise, blurred, single):
    assert bad["fdd"] > 2 * real["fdd"]
  assert noise["precision"] < 0.1 and single["recall"] < 0.05 and single["coverage"] < 0.05
  assert single["inception_score"] < 1.5 and single["classes_present"] == 1
  assert real["inception_score"] > 9 and real["classes_present"] == 10


@pytest.mark.slow   # 5 s: make test-slow
def test_copies_are_flagged(digits_eval):
  from artjax.evaluation.images import image_metrics
  ds = digits_eval.dataset
  rng = np.random.default_rng(0)
  train = ds.images("train")
  copies = train[rng.permutation(len(train))[:269]]
  c = image_metrics(digits_eval, copies)
  fresh = image_metrics(digits_eval, ds.images("validation"))
  assert c["exact_copies"] == 1.0 and c["nn_ratio"] < 0.05 and c["ct"] < -5
  assert fresh["exact_copies"] < 0.05 and 0.9 < fresh["nn_ratio"] < 1.1 and abs(fresh["ct"]) < 3


def test_kid_is_the_unbiased_polynomial_mmd():
  from artjax.evaluation.metrics import kernel_inception_distance
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
  k = lambda x, y: (x @ y.T / 8 + 1) ** 3  # noqa: E731
  kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
  m = 60
  exact = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
  # one subset of every row (order does not matter) is the textbook estimator
  assert np.isclose(kernel_inception_distance(a, b, num_subsets=1), exact, rtol=1e-9)
  # 10 subsets of all 400 rows (the default 100 only repeats the same draw: slower, same test)
  same = kernel_inception_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)),
                                   num_subsets=10)
  shifted = kernel_inception_distance(rng.normal(size=(400, 8)),
                                      rng.normal(size=(400, 8)) + 0.5, num_subsets=10)
  assert abs(same) < 0.02 < shifted
