"""One way to name a leaf of a pytree: its key path as strings (dict keys, sequence indices,
attribute names), e.g. ("g", "convs", "0", "kernel")."""

from __future__ import annotations


def names(path) -> tuple[str, ...]:
  """The entries of a jax key path (DictKey, SequenceKey, GetAttrKey, ...) as strings."""
  return tuple(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)
