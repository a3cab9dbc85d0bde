"""Logical axis annotations of weights (MaxText-style): a model names what each weight axis
means -- `embed` (model width), `mlp` (hidden units), `heads` (attention heads x head dim),
`vocab` -- and nothing about devices. `artjax.engine.parallel.RULES` maps the names onto the mesh;
models never see mesh axes.

Chains of dense layers alternate (`dense(i)`): layer i maps embed -> mlp, layer i+1
mlp -> embed (Megatron's column- then row-parallel pair), so a layer's output layout is the
next one's input layout. (The same kernel layout on every layer of a chain is also valid
sharding, but XLA 0.10's partitioner computes a wrong gradient for it when the batch is split
over data x fsdp and the weights over fsdp x tensor: `tests/test_parallel.py`.)"""

from __future__ import annotations

import jax
from flax import nnx

DENSE = ("embed", "mlp")                      # [in, out] kernels (the bias takes `out`'s)
EMBED = ("vocab", "embed")                    # embedding tables [vocab, width]


def dense(i: int) -> tuple:
  """The i-th kernel [in, out] of a chain of dense layers."""
  return DENSE if i % 2 == 0 else DENSE[::-1]


def conv(i: int) -> tuple:
  """The i-th kernel [kh, kw, in, out] of a chain of convolutions: unsplit. Split channels
  (`(None, None) + dense(i)`) are valid layouts, but XLA 0.10's partitioner returns wrong
  convolution gradients for them on a data x fsdp x tensor mesh (measured: 7% off after one
  SGD step, where the dense chains agree to 1e-7); conv kernels here are small."""
  del i
  return (None, None, None, None)


def named(init, names):
  """`init` with logical axis names attached; the names only annotate (no eager sharding:
  the loop lays weights out from the names through the rules, under its mesh)."""
  return nnx.with_partitioning(init, tuple(names), eager_sharding=False)


def abstract_axes(build) -> dict:
  """The logical names of the weights of `build()` (a module; or a tuple of modules: then a
  tuple), as a pure dict of name tuples like `nnx.to_pure_dict(nnx.state(module))` (() =
  unannotated: replicated), without allocating the weights. Safe under an active mesh: the
  names stay names."""
  states = jax.eval_shape(lambda: jax.tree.map(
      nnx.state, build(), is_leaf=lambda m: isinstance(m, nnx.Module)))
  return jax.tree.map(_names, states, is_leaf=lambda s: isinstance(s, nnx.State))


def _names(state) -> dict:
  specs = nnx.to_pure_dict(nnx.get_partition_spec(state))
  return jax.tree.map(lambda p: tuple(p), specs,
                      is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
