"""Metrics of a set of images (quality, coverage, copying) and, beside each, its real floor."""

from __future__ import annotations

import numpy as np

from artjax.evaluation import metrics


def distribution_metrics(feats, ref) -> dict:
  """FID (Frechet distance), KID (x1000, as papers print it), precision and recall of the
  feature rows `feats` against the reference rows `ref`."""
  p, r = metrics.precision_recall(ref, feats)
  return {"fid": float(metrics.frechet_distance(feats, ref)),
          "kid_x1000": 1000 * metrics.kernel_inception_distance(feats, ref),
          "precision": p, "recall": r}


def standard_metrics(features, images, train, test, floor) -> dict:
  """In a standard feature network's space (`features(images) -> [N, D]`, e.g. Inception-v3):
  the samples against the train and test splits, and beside them the real-vs-real floor
  (`floor`, held-out images as many as the samples) against the same splits."""
  f_train, f_test = features(train), features(test)
  out = {}
  for name, x in (("samples", images), ("floor", floor)):
    f = features(x)
    out[name] = {"vs_train": distribution_metrics(f, f_train),
                 "vs_test": distribution_metrics(f, f_test), "n": int(len(x))}
  return out


def _flat(images):
  return np.asarray(images, np.float32).reshape(len(images), -1) / 255.0


def image_metrics(ev, images, labels=None, *, heldout_split="test",
                  copy_cells: int = 5) -> dict:
  """All metrics of `images` (uint8 NHWC) against the training split. `ev`: the evaluator
  (its `dataset`, `features(images)`, `probs(images)`, `test_accuracy`)."""
  ds = ev.dataset
  train_im = ds.images("train")
  feats = ev.features(images)
  train_feats = ev.features(train_im)
  probs = ev.probs(images)
  shares = metrics.class_shares(probs, ds.num_classes)
  p, r = metrics.precision_recall(train_feats, feats)
  dens, cov = metrics.density_coverage(train_feats, feats)
  out = {
      "n": int(len(images)),
      "fdd": float(metrics.frechet_distance(feats, train_feats)),
      "kdd_x1000": 1000 * metrics.kernel_inception_distance(feats, train_feats),
      "inception_score": float(metrics.inception_score(probs)),
      "precision": p, "recall": r, "density": dens, "coverage": cov,
      "classes_present": int(np.sum(shares >= 0.2 / ds.num_classes)),
      "min_class_share": float(shares.min()), "class_shares": [round(float(s), 4) for s in shares],
      "confidence": float(np.mean(probs.max(axis=1))),
  }
  if labels is not None:
    out["label_accuracy"] = float(np.mean(np.argmax(probs, 1) == np.asarray(labels)))
  out.update(metrics.nn_distance_ratio(_flat(images), _flat(train_im), _flat(ds.images(heldout_split))))
  out.update(metrics.data_copying_ct(_flat(train_im), _flat(ds.images(heldout_split)), _flat(images),
                                     num_cells=copy_cells))
  return out


def evaluate_images(ev, images, labels=None, *, floor_split="validation",
                    heldout_split="test") -> dict:
  """Metrics of generated images and, beside each, its floor: the same metrics for
  held-out real images (`floor_split`) in place of the samples. Copying compares
  distances to train against a second held-out split (`heldout_split`).
  Compare at equal n: FDD is biased by sample size (use n = len(floor split))."""
  ds = ev.dataset
  return {"dataset": ds.name, "floor_split": floor_split, "heldout_split": heldout_split,
          "evaluator_test_accuracy": ev.test_accuracy,
          "samples": image_metrics(ev, images, labels, heldout_split=heldout_split),
          "floor": image_metrics(ev, ds.images(floor_split), ds.labels(floor_split),
                                 heldout_split=heldout_split)}


def ssim(images, truth) -> np.ndarray:
  """Per-image SSIM of colour images (uint8 NHWC, 7x7 windows, every channel) against the truth."""
  from skimage.metrics import structural_similarity
  win = min(7, images.shape[1] - (1 - images.shape[1] % 2))
  return np.asarray([structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=win)
                     for a, b in zip(np.asarray(images), np.asarray(truth))])


def paired_scores(images, truth, features=None, style_prob=None, labels=None,
                  predict=None) -> dict:
  """Means over pairs of `images` against the true drawings `truth` (uint8 NHWC, row for row):
  pixel L1 (0..1, lower is better), SSIM (higher), the feature distance (mean squared
  difference of `features(images)` rows, lower), the probability that each image is in the
  target style (`style_prob(images) -> [N]`) and, given the subjects' `labels`, the share the
  classifier `predict(images) -> [N]` still names right (the subject kept)."""
  a, b = np.asarray(images, np.float32), np.asarray(truth, np.float32)
  out = {"n": int(len(a)), "l1": float(np.mean(np.abs(a - b)) / 255.0),
         "ssim": float(np.mean(ssim(images, truth)))}
  if features is not None:
    out["feature_dist"] = float(np.mean(np.mean((features(images) - features(truth)) ** 2, -1)))
  if style_prob is not None:
    out["style_prob"] = float(np.mean(style_prob(images)))
  if labels is not None and predict is not None:
    out["category_kept"] = float(np.mean(predict(images) == np.asarray(labels)))
  return out


def heldout_distances(features, images, floor, test) -> dict:
  """Frechet and kernel distances (KD x1000) of the samples and of the real floor (held-out
  images, as many as the samples) to the test split, in `features(images) -> [N, D]`."""
  f_test = features(test)
  out = {}
  for name, x in (("samples", images), ("floor", floor)):
    f = features(x)
    out[name] = {"fd": float(metrics.frechet_distance(f, f_test)),
                 "kd_x1000": 1000 * metrics.kernel_inception_distance(f, f_test), "n": int(len(x))}
  return out
