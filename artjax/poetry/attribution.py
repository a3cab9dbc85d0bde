"""Who wrote it? A poet classifier for judging style fine-tuning.

Character 1-2-gram TF-IDF features and multinomial logistic regression (scikit-learn) over
the `k` poets with the most training poems; trained on the train split, its accuracy is
measured on the held-out test split's poems by the same poets (the figure that says how
far to trust its attributions of samples).
"""

from __future__ import annotations

import collections

import numpy as np


class PoetClassifier:
  def __init__(self, poems, k: int = 20, max_chars: int = 64):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    tr = poems.splits["train"]
    counts = collections.Counter(a for a, b in zip(tr["author"], tr["body"]) if len(b) <= max_chars)
    self.poets = [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    keep = set(self.poets)
    x = [b for a, b in zip(tr["author"], tr["body"]) if a in keep and len(b) <= max_chars]
    y = [a for a, b in zip(tr["author"], tr["body"]) if a in keep and len(b) <= max_chars]
    self.vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    self.clf = LogisticRegression(max_iter=300, C=10.0)
    self.clf.fit(self.vec.fit_transform(x), y)
    te = poems.splits["test"]
    tx = [b for a, b in zip(te["author"], te["body"]) if a in keep and len(b) <= max_chars]
    ty = [a for a, b in zip(te["author"], te["body"]) if a in keep and len(b) <= max_chars]
    self.test_accuracy = float(np.mean(self.predict(tx) == np.asarray(ty)))
    self.test_n = len(ty)
    self.chance = max(collections.Counter(ty).values()) / max(len(ty), 1)

  def predict(self, bodies) -> np.ndarray:
    return self.clf.predict(self.vec.transform(list(bodies)))

  def share(self, bodies, poet: str) -> float:
    return float(np.mean(self.predict(bodies) == poet))
