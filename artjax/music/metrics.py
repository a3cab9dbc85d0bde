"""Evaluation of music models against baselines, the literature, and the training set.

* NLL in nats per quarter-note frame on the test split (each frame scored as its 88 keys,
  the JSB Chorales unit), beside two baselines computed here on the same split: an
  independent Bernoulli per key, and a per-key two-state Markov chain (each key given its
  own state in the previous frame), both fitted on the training split with add-one
  smoothing; and beside published JSB Chorales results (different split: "JSB-like").
* Copying: the longest run of consecutive frames of a sample found verbatim in a training
  chorale, against the same statistic for held-out (test) chorales of the sample length.
* Mode: the share of samples music21's key analysis calls minor (Krumhansl-Schmuckler: it
  reads the pitch-class profile), and a second, independent test that never looks at the
  profile (`ChordModeTest`): the shares of frames that sound a major, a minor and a
  diminished triad, read by a logistic regression fitted on the training chorales' labels.
"""

from __future__ import annotations

import numpy as np

# Negative log-likelihood (nats per frame) on JSB Chorales' test split, as published.
PUBLISHED = {
    "RNN-RBM (Boulanger-Lewandowski et al. 2012)": 6.27,
    "RNN-NADE (Boulanger-Lewandowski et al. 2012)": 5.56,
    "LSTM (Bai et al. 2018)": 8.45,
    "TCN (Bai et al. 2018)": 8.10,
}


def _bernoulli_nll(x, p):
  p = np.clip(p, 1e-9, 1 - 1e-9)
  return -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(-1)


def bernoulli_baseline(train_rolls, test_rolls) -> float:
  """Nats per frame of an independent Bernoulli per key fitted on `train_rolls`."""
  train = np.concatenate(train_rolls).astype(np.float64)
  p = (train.sum(0) + 1.0) / (len(train) + 2.0)
  test = np.concatenate(test_rolls).astype(np.float64)
  return float(_bernoulli_nll(test, p).mean())


def markov_baseline(train_rolls, test_rolls) -> float:
  """Nats per frame of per-key 2-state Markov chains (first frame: the marginal)."""
  counts = np.ones((2, 2, 88))     # [previous state, current state, key], add-one
  for r in train_rolls:
    r = r.astype(np.int64)
    for a in (0, 1):
      for b in (0, 1):
        counts[a, b] += ((r[:-1] == a) & (r[1:] == b)).sum(0)
  p_on = counts[:, 1] / counts.sum(1)           # [previous state, key]
  marg = (np.concatenate(train_rolls).sum(0) + 1.0) / (sum(len(r) for r in train_rolls) + 2.0)
  total, frames = 0.0, 0
  for r in test_rolls:
    r = r.astype(np.float64)
    total += _bernoulli_nll(r[:1], marg).sum()
    prev = r[:-1].astype(np.int64)
    total += _bernoulli_nll(r[1:], np.take_along_axis(p_on, prev, 0)).sum()
    frames += len(r)
  return total / frames


class FrameIndex:
  """Frames of a set of rolls as integer ids, for verbatim-run searches."""

  def __init__(self, rolls):
    self.ids: dict[bytes, int] = {}
    self.seqs = [self.encode(r, add=True) for r in rolls]
    self.concat = np.concatenate([np.append(s, -1) for s in self.seqs])   # -1 separates

  def encode(self, roll, add=False):
    out = []
    for f in np.asarray(roll, np.uint8):
      k = f.tobytes()
      if k not in self.ids:
        if not add:
          out.append(-2)   # never seen: matches nothing
          continue
        self.ids[k] = len(self.ids)
      out.append(self.ids[k])
    return np.asarray(out, np.int64)

  def longest_run(self, roll) -> int:
    """Longest run of consecutive frames of `roll` that occurs verbatim in the index."""
    q = self.encode(roll)
    best = 0
    prev = np.zeros(len(self.concat) + 1, np.int64)
    for x in q:     # longest common substring, one row of the DP at a time
      cur = np.zeros_like(prev)
      hit = self.concat == x
      cur[1:] = np.where(hit, prev[:-1] + 1, 0)
      best = max(best, int(cur.max()))
      prev = cur
    return best


def copy_stats(index: FrameIndex, rolls) -> dict:
  runs = np.asarray([index.longest_run(r) for r in rolls])
  return {"median": float(np.median(runs)), "mean": float(runs.mean()), "max": int(runs.max()),
          "p90": float(np.percentile(runs, 90))}


def roll_to_stream(roll):
  from music21 import note, stream
  from artjax.music.render import notes_of
  s = stream.Stream()
  for pitch, start, end in notes_of(roll):
    n = note.Note(pitch, quarterLength=end - start)
    s.insert(float(start), n)
  return s


def key_of(roll) -> tuple[str, str]:
  """(tonic name, 'major'|'minor') by music21's Krumhansl-Schmuckler analysis."""
  k = roll_to_stream(roll).analyze("key")
  return k.tonic.name, k.mode


def minor_share(rolls) -> float:
  modes = [key_of(r)[1] for r in rolls if np.asarray(r).any()]
  return float(np.mean([m == "minor" for m in modes])) if modes else float("nan")


_PC = (np.arange(88) + 21) % 12
_TRIADS = ((0, 4, 7), (0, 3, 7), (0, 3, 6))   # major, minor, diminished (any root, any voicing)


def triad_shares(roll, frames: int = 64) -> np.ndarray:
  """[3] shares of the first `frames` frames whose pitch classes hold a major / a minor / a
  diminished triad (the first of those found; inversions and doublings count)."""
  roll = np.asarray(roll)[:frames]
  counts = np.zeros(3)
  for frame in roll:
    pcs = np.zeros(12, bool)
    pcs[_PC[frame > 0]] = True
    for q, triad in enumerate(_TRIADS):
      if any(all(pcs[(r + i) % 12] for i in triad) for r in range(12)):
        counts[q] += 1
        break
  return counts / max(len(roll), 1)


class ChordModeTest:
  """Major vs minor from chord qualities alone: a class-balanced logistic regression on
  `triad_shares`, fitted on labelled rolls (the training chorales). It does not read the
  pitch-class profile, so steering the profile cannot fool it the way it fools key analysis."""

  def __init__(self, rolls, modes, frames: int = 64):
    from sklearn.linear_model import LogisticRegression
    self.frames = frames
    x = np.stack([triad_shares(r, frames) for r in rolls])
    self.model = LogisticRegression(class_weight="balanced").fit(x, np.asarray(modes))

  def minor(self, rolls) -> np.ndarray:
    """Bool [N]: is each roll (with any sounding frame) called minor."""
    x = np.stack([triad_shares(r, self.frames) for r in rolls])
    return self.model.predict(x) == 1

  def minor_share(self, rolls) -> float:
    rolls = [r for r in rolls if np.asarray(r).any()]
    return float(np.mean(self.minor(rolls))) if rolls else float("nan")

  def accuracy(self, rolls, modes) -> float:
    return float(np.mean(self.minor(rolls) == (np.asarray(modes) == 1)))


def roll_mode_following(rolls, modes, train_rolls, train_modes, limit: int = 200) -> dict:
  """How often piano rolls (bool [N, T, 88]) are heard in their mode label (0 major, 1 minor)
  by the two tests of mode: music21's key analysis and ChordModeTest (fitted on the training
  segments, reading chord qualities only). Per mode: the share called that mode, over `limit`
  rolls with any sounding note spread evenly over the set (neighbours share a piece)."""
  rolls, modes = np.asarray(rolls), np.asarray(modes)
  chords = ChordModeTest(train_rolls, train_modes, frames=rolls.shape[1])
  out = {}
  for mode, name in ((0, "major"), (1, "minor")):
    pick = [r for r, m in zip(rolls, modes) if m == mode and r.any()]
    if not pick:
      continue
    pick = [pick[i] for i in np.unique(np.linspace(0, len(pick) - 1, limit).astype(int))]
    m21 = np.mean([key_of(r)[1] == name for r in pick])
    ch = np.mean(chords.minor(pick) == (mode == 1))
    out[name] = {"music21": float(m21), "chords": float(ch), "n": len(pick)}
  return out


def exact_copy_share(rolls, train_rolls) -> float:
  """Share of rolls (bool [N, T, 88]) identical to some training roll."""
  seen = {np.packbits(np.asarray(r, bool)).tobytes() for r in train_rolls}
  return float(np.mean([np.packbits(np.asarray(r, bool)).tobytes() in seen for r in rolls]))
