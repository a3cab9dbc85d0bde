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
  `prefix` (artjax.nn.transformer) let every query attend to them.
* `optimizer_for(tx, mask)`: an optax transformation that updates only masked leaves and
  keeps no optimizer state for the frozen ones.
* `FineTune`: the one object every task uses to wire a method to its models: per-model
  rules, masks, LoRA/prefix parameters and their initialisation, the effective weights,
  the optimizer wrapping, loading pretrained weights and merging LoRA.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

from artjax import ConfigError
from artjax.engine import keypath

METHODS = ("full", "top", "freeze_d", "lora", "adapter", "bitfit", "prefix")
#: what a method does to one model (a task maps its methods to per-model rules)
RULES = ("none", "full", "top", "bottom_frozen", "bitfit", "adapter", "lora", "prefix")
_MASKED = ("top", "bottom_frozen", "bitfit", "adapter")
_BIAS_LIKE = ("bias", "scale")

#: the PRNG stream (fold_in of the model key) that initialises fine-tuning factors
PEFT_STREAM = 7


def path_str(path) -> str:
  return ".".join(keypath.names(path))


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


class FineTune:
  """A fine-tuning method applied to a task's models, one rule per model.

  `models`: {state key: (abstract params, layer_order, rule)} with rule in RULES (the task
  maps its method to rules, e.g. FreezeD: the generator "full", the discriminator
  "bottom_frozen"). State layout: the model's weights stay under its key; LoRA factors or a
  prefix live under `key(name)` (e.g. "g_lora", "params_prefix") and are what the
  optimizer updates; for masked rules the optimizer updates the weights themselves but
  keeps no state for frozen leaves. `prefix_shape` (layers, length, heads, head_dim) is
  needed by the "prefix" rule."""

  def __init__(self, ft, models: dict, prefix_shape: tuple | None = None):
    self.method = ft.method
    self.cfg = ft
    self.rules = {name: rule for name, (_, _, rule) in models.items()}
    self.masks = {}
    for name, (params, order, rule) in models.items():
      if rule not in RULES:
        raise ConfigError(f"unknown fine-tuning rule {rule!r} for {name}")
      if rule in _MASKED:
        self.masks[name] = trainable_mask(params, rule, order, ft.k)
      if rule == "lora" and not lora_targets(params, ft.lora_targets):
        raise ConfigError(f"finetune.lora_targets={ft.lora_targets!r} matches no dense or conv "
                          f"kernel of {name}")
      if rule == "prefix" and prefix_shape is None:
        raise ConfigError(f"finetune.method=prefix: the {name} model has no attention prefix")
    self.prefix_shape = prefix_shape

  @property
  def mergeable(self) -> bool:
    return any(r == "lora" for r in self.rules.values())

  def key(self, name: str) -> str:
    """The state key the optimizer updates for model `name`."""
    rule = self.rules[name]
    return f"{name}_{rule}" if rule in ("lora", "prefix") else name

  def init(self, params: dict, key) -> dict:
    """The extra state entries (LoRA factors, prefixes) for {name: initial weights}."""
    out = {}
    for i, (name, rule) in enumerate(self.rules.items()):
      k = jax.random.fold_in(key, i)
      if rule == "lora":
        out[self.key(name)] = init_lora(params[name], k, self.cfg.lora_rank, self.cfg.lora_targets)
      elif rule == "prefix":
        layers, _, heads, head_dim = self.prefix_shape
        out[self.key(name)] = init_prefix(k, layers, self.cfg.prefix_len, heads, head_dim)
    return out

  def optimizer(self, name: str, tx: optax.GradientTransformation):
    return optimizer_for(tx, self.masks[name]) if name in self.masks else tx

  def weights(self, state: dict, name: str, trainable=None):
    """Model `name`'s effective weights (LoRA folded in); `trainable` replaces the state's
    trainable entry (inside a gradient)."""
    tp = state[self.key(name)] if trainable is None else trainable
    if self.rules[name] == "lora":
      return apply_lora(state[name], tp, self.cfg.lora_alpha)
    if self.rules[name] == "prefix":
      return state[name]
    return tp

  def prefix(self, state: dict, name: str, trainable=None):
    if self.rules[name] != "prefix":
      return None
    return state[self.key(name)] if trainable is None else trainable

  def trainable_count(self, abstract_state: dict) -> int:
    return sum(count(abstract_state[self.key(n)], self.masks.get(n)) for n in self.rules)

  def merged(self, state: dict) -> dict:
    """{name: plain weights} with LoRA folded in (the merge)."""
    return {name: self.weights(state, name) for name in self.rules}
