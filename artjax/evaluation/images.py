"""Metrics of a set of images (quality, coverage, copying) and, beside each, its real floor."""

from __future__ import annotations

import numpy as np

from artjax.evaluation import metrics





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
