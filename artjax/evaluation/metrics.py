"""Sample-quality, diversity and copying metrics (jitted where it pays; numpy elsewhere).

All take feature matrices [N, D] (or images flattened to features for copying):
* `frechet_distance` (FID-style, in any feature space; jnp, jittable, eigh-based sqrtm);
* `kernel_inception_distance` (KID, Binkowski et al. 2018: unbiased MMD^2 with the cubic
  polynomial kernel, averaged over random subsets as StyleGAN2-ADA computes it);
* `inception_score` from class probabilities;
* `precision_recall` (Kynkaanniemi et al. 2019, k-NN manifolds);
* `density_coverage` (Naeem et al. 2020);
* `nn_distance_ratio` (median sample->train NN distance over held-out->train);
* `data_copying_ct` (Meehan et al. 2020, the C_T statistic: Mann-Whitney U z-scores
  per training-set cell, weighted by cell mass; strongly negative means copying).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def _mean_cov(x):
  x = x.astype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  mu = jnp.mean(x, axis=0)
  xc = x - mu
  return mu, xc.T @ xc / (x.shape[0] - 1)


def _psd_sqrt(m):
  w, v = jnp.linalg.eigh((m + m.T) / 2)
  return (v * jnp.sqrt(jnp.clip(w, 0.0))) @ v.T


@jax.jit
def frechet_distance(a, b):
  """||mu_a - mu_b||^2 + tr(Sa) + tr(Sb) - 2 tr((Sa^1/2 Sb Sa^1/2)^1/2)."""
  mu_a, s_a = _mean_cov(a)
  mu_b, s_b = _mean_cov(b)
  ra = _psd_sqrt(s_a)
  w = jnp.linalg.eigvalsh(ra @ s_b @ ra)
  tr_cross = jnp.sum(jnp.sqrt(jnp.clip(w, 0.0)))
  return jnp.sum((mu_a - mu_b) ** 2) + jnp.trace(s_a) + jnp.trace(s_b) - 2 * tr_cross


def kernel_inception_distance(a, b, num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> float:
  """Mean over subsets of size m = min(|a|, |b|, max_subset_size) of the unbiased MMD^2
  between a and b with k(x, y) = (x.y / d + 1)^3. Unbiased: near 0 (either sign) for two
  samples of one distribution."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d, m = a.shape[1], min(len(a), len(b), max_subset_size)
  if m < 2:
    return float("nan")
  rng = np.random.RandomState(seed)
  total = 0.0
  for _ in range(num_subsets):
    x = a[rng.choice(len(a), m, replace=False)]
    y = b[rng.choice(len(b), m, replace=False)]
    k_in = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
    k_cross = (x @ y.T / d + 1) ** 3
    total += (k_in.sum() - np.trace(k_in)) / (m - 1) - k_cross.sum() * 2 / m
  return float(total / num_subsets / m)


@jax.jit
def inception_score(probs):
  """exp(E_x KL(p(y|x) || p(y))); between 1 and the number of classes."""
  p = jnp.clip(probs, 1e-12, 1.0)
  py = jnp.mean(p, axis=0, keepdims=True)
  return jnp.exp(jnp.mean(jnp.sum(p * (jnp.log(p) - jnp.log(py)), axis=1)))


@jax.jit
def pairwise_distances(a, b):
  aa = jnp.sum(a * a, axis=1)[:, None]
  bb = jnp.sum(b * b, axis=1)[None, :]
  return jnp.sqrt(jnp.clip(aa + bb - 2 * a @ b.T, 0.0))


def _kth_nn_radius(x, k):
  """Distance of each row to its k-th nearest other row (the (len-1)-th in smaller sets)."""
  d = np.asarray(pairwise_distances(x, x))
  return np.sort(d, axis=1)[:, min(k, len(x) - 1)]  # column 0 is the point itself


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  if min(len(real), len(fake)) < 2:
    return float("nan"), float("nan")
  r_real, r_fake = _kth_nn_radius(real, k), _kth_nn_radius(fake, k)
  d = np.asarray(pairwise_distances(fake, real))          # [F, R]
  precision = np.mean(np.any(d <= r_real[None, :], axis=1))
  recall = np.mean(np.any(d.T <= r_fake[None, :], axis=1))
  return float(precision), float(recall)


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  r_real = _kth_nn_radius(real, k)
  d = np.asarray(pairwise_distances(real, fake))          # [R, F]
  inside = d <= r_real[:, None]
  density = inside.sum() / (k * fake.shape[0])
  coverage = np.mean(np.min(d, axis=1) <= r_real)
  return float(density), float(coverage)


def nn_distances(query, reference) -> np.ndarray:
  """Exact distance of each query row to its nearest reference row."""
  q, r = np.asarray(query, np.float32), np.asarray(reference, np.float32)
  nn = np.asarray(pairwise_distances(q, r)).argmin(axis=1)
  return np.linalg.norm(q - r[nn], axis=1)


def nn_distance_ratio(samples, train, heldout) -> dict:
  """Median NN distance to train of samples, of held-out data, and their ratio (<<1: copying)."""
  ds = nn_distances(samples, train)
  dh = nn_distances(heldout, train)
  return {"nn_train_samples": float(np.median(ds)), "nn_train_heldout": float(np.median(dh)),
          "nn_ratio": float(np.median(ds) / max(np.median(dh), 1e-12)),
          "exact_copies": float(np.mean(ds < 1e-6))}


def _mann_whitney_z(x, y) -> float:
  """z-score of the Mann-Whitney U statistic of x vs y (normal approximation, tie-corrected)."""
  from scipy.stats import rankdata
  m, n = len(x), len(y)
  ranks = rankdata(np.concatenate([x, y]))
  u = ranks[:m].sum() - m * (m + 1) / 2
  mu = m * n / 2
  _, counts = np.unique(np.concatenate([x, y]), return_counts=True)
  tie = np.sum(counts ** 3 - counts) / ((m + n) * (m + n - 1))
  sigma = math.sqrt(m * n / 12 * ((m + n + 1) - tie))
  return float((u - mu) / max(sigma, 1e-12))


def data_copying_ct(train, heldout, samples, num_cells: int = 5, seed: int = 0,
                    min_per_cell: int = 5) -> dict:
  """Meehan et al.'s C_T: per k-means cell of the training set, the z-score of
  Mann-Whitney U comparing NN-to-train distances of samples (x) vs held-out (y).
  Negative: samples are closer to training points than fresh data is (copying)."""
  from sklearn.cluster import KMeans
  train = np.asarray(train, np.float32)
  km = KMeans(n_clusters=num_cells, n_init=3, random_state=seed).fit(train)
  cell_h, cell_s = km.predict(np.asarray(heldout, np.float32)), km.predict(np.asarray(samples, np.float32))
  d_h, d_s = nn_distances(heldout, train), nn_distances(samples, train)
  zs, weights = [], []
  for c in range(num_cells):
    xs, ys = d_s[cell_s == c], d_h[cell_h == c]
    if len(xs) >= min_per_cell and len(ys) >= min_per_cell:
      zs.append(_mann_whitney_z(xs, ys))
      weights.append(np.mean(cell_h == c))
  if not zs:
    return {"ct": float("nan"), "ct_cells": 0}
  w = np.asarray(weights) / np.sum(weights)
  return {"ct": float(np.sum(w * np.asarray(zs))), "ct_cells": len(zs)}


def class_shares(probs, num_classes: int) -> np.ndarray:
  pred = np.argmax(np.asarray(probs), axis=1)
  return np.bincount(pred, minlength=num_classes) / max(len(pred), 1)


def psnr(a, b, peak: float = 255.0) -> np.ndarray:
  """Per image peak signal-to-noise ratio in dB of uint8 (or float) image batches [N, ...]."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  mse = np.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))
  return 10 * np.log10(peak ** 2 / np.maximum(mse, 1e-10))
