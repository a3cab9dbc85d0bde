"""Parameter-efficient fine-tuning, model-agnostic: it works on parameter pytrees, so the
GAN, the evaluator and future sequence models share it.

* `trainable_mask(params, method, layer_order, k)`: which leaves a method trains
  (`full`, `top` = the last k layers in `layer_order`, `bottom_frozen` = all but the
  first k, `bitfit` = biases and normalisation scales only, `adapter` = the weights under
  a model's `adapters`).
* LoRA (Hu et al. 2021): `init_lora` adds A [fan_in, r] (random) and B [r, out] (zeros)
  for every 2-D (dense) or 4-D (conv) kernel whose path matches `targets`;
  `apply_lora` returns W + alpha/r * (A @ B) reshaped to W. B = 0 at the start, so the
  adapted model starts exactly at the pretrained function; `apply_lora` is also the merge.
* Prefix-tuning (Li & Liang 2021): `init_prefix` makes P learned key/value vectors per
  attention layer ({"k", "v"}: [layers, P, heads, head_dim]); attention models that accept a
  `prefix` (artjax.models.transformer) let every query attend to them.
* `optimizer_for(tx, mask)`: an optax transformation that updates only masked leaves and
  keeps no optimizer state for the frozen ones.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

from artjax import ConfigError

METHODS = ("full", "top", "freeze_d", "lora", "adapter", "bitfit", "prefix")
_BIAS_LIKE = ("bias", "scale")


def path_str(path) -> str:
  return ".".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)


def _layer_of(path: str, layer_order) -> int | None:
  for i, name in enumerate(layer_order):
    if path == name or path.startswith(name + "."):
      return i
  return None


def trainable_mask(params, method: str, layer_order=(), k: int = 1):
  """Bool pytree like `params`: True where `method` trains the leaf."""
  n = len(layer_order)

  def leaf(path, _):
    p = path_str(path)
    if method == "full":
      return True
    if method == "bitfit":
      return p.rsplit(".", 1)[-1] in _BIAS_LIKE
    if method == "adapter":
      return p.startswith("adapters.")
    layer = _layer_of(p, layer_order)
    if layer is None:
      raise ConfigError(f"parameter {p} is in no layer of {layer_order}")
    if method == "top":
      return layer >= n - k
    if method == "bottom_frozen":
      return layer >= k
    raise ConfigError(f"unknown trainable method {method!r}")
  return jax.tree_util.tree_map_with_path(leaf, params)


def count(tree, mask=None) -> int:
  leaves = jax.tree.leaves(tree)
  if mask is None:
    return sum(int(np.prod(np.shape(x))) for x in leaves)
  return sum(int(np.prod(np.shape(x))) for x, m in zip(leaves, jax.tree.leaves(mask)) if m)


def optimizer_for(tx: optax.GradientTransformation, mask) -> optax.GradientTransformation:
  """Updates only leaves where `mask` is True; frozen leaves get zero updates and no state."""
  labels = jax.tree.map(lambda m: "train" if m else "frozen", mask)
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def lora_targets(params, pattern: str = ".*") -> list[str]:
  rx = re.compile(pattern)
  out = []
  for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
    p = path_str(path)
    if p.endswith("kernel") and np.ndim(x) in (2, 4) and rx.search(p):
      out.append(p)
  return out


def init_lora(params, key, rank: int, pattern: str = ".*") -> dict:
  """{kernel path: {"a": [fan_in, r], "b": [r, out]}}; B is zero (identity start)."""
  flat = {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
  lora = {}
  for i, p in enumerate(lora_targets(params, pattern)):
    w = flat[p]
    fan_in, out = math.prod(w.shape[:-1]), w.shape[-1]
    r = min(rank, fan_in, out)
    a = jax.random.normal(jax.random.fold_in(key, i), (fan_in, r), jnp.float32) / math.sqrt(fan_in)
    lora[p.replace(".", "/")] = {"a": a, "b": jnp.zeros((r, out), jnp.float32)}
  if not lora:
    raise ConfigError(f"LoRA pattern {pattern!r} matches no dense or conv kernel")
  return lora


def apply_lora(params, lora: dict, alpha: float):
  """W + (alpha / r) * A @ B for every adapted kernel (the merge, too)."""
  def leaf(path, w):
    ab = lora.get(path_str(path).replace(".", "/"))
    if ab is None:
      return w
    r = ab["a"].shape[1]
    delta = (ab["a"] @ ab["b"]) * (alpha / r)
    return w + delta.reshape(w.shape).astype(w.dtype)
  return jax.tree_util.tree_map_with_path(leaf, params)


def init_prefix(key, num_layers: int, length: int, num_heads: int, head_dim: int,
                scale: float = 0.02) -> dict:
  """Prefix-tuning parameters: {"k", "v"} of shape [layers, P, heads, head_dim]."""
  if length <= 0:
    raise ConfigError(f"prefix-tuning needs a prefix length > 0, got {length}")
  kk, kv = jax.random.split(key)
  shape = (num_layers, length, num_heads, head_dim)
  return {"k": scale * jax.random.normal(kk, shape, jnp.float32),
          "v": scale * jax.random.normal(kv, shape, jnp.float32)}


def load_pretrained(fresh, pretrained, what: str, new_ok: tuple = ()):
  """`fresh`'s structure with every leaf taken from `pretrained` (fine-tuning's start).

  Leaves under a `new_ok` prefix that the pretrained tree lacks (adapters added for
  fine-tuning) keep their fresh (identity) init. Any other missing, extra or differently
  shaped leaf is a ConfigError naming it."""
  have = {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
  want = {path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(fresh)[0]}
  extra = sorted(set(have) - want)
  if extra:
    raise ConfigError(f"pretrained {what} does not match the model: {extra[0]} "
                      f"{np.shape(have[extra[0]])} is not in the config's model")

  def leaf(path, x):
    p = path_str(path)
    if p not in have:
      if p.startswith(tuple(new_ok)) and new_ok:
        return x
      raise ConfigError(f"pretrained {what} does not match the model: it has no {p}")
    if np.shape(have[p]) != np.shape(x):
      raise ConfigError(f"pretrained {what} does not match the model: {p} "
                        f"{np.shape(have[p])} vs the config's {np.shape(x)}")
    return have[p]
  return jax.tree_util.tree_map_with_path(leaf, fresh)
