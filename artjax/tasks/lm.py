"""What the Transformer language-model tasks (music, poetry) share: one `params` tree
built by the task's `build(key)` (an artjax.nn.transformer.CausalTransformer), the
optimizer, fine-tuning through artjax.engine.peft (full, top, bitfit, LoRA, prefix-tuning: the base
weights of LoRA/prefix runs stay frozen, with no optimizer state), warm starts, and the
effective weights the step and the sampler use."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from artjax import ConfigError
from artjax.engine import optim, parallel, peft
from artjax.nn import logical
from artjax.nn.transformer import REMAT_POLICIES
from artjax.tasks.base import Task, cast_floating, split_rng


class TransformerLM(Task):
  """Subclasses define `build(key)`, `batch(key, data)` -> token windows [B, L],
  `scored_nll(params, prefix, seq, key)` -> (NLL, weights) per position and
  `step_metrics(loss, total, seq)`; they call `_check_model(methods)` in `validate` and
  `_init_model()` at its end. The training step is this class's, once for every LM task."""

  def train_step(self, state, data):
    """One step on a batch drawn inside the compiled program: the weighted mean NLL, its
    gradient into the trainable tree (the weights, or the PEFT factors) and the update."""
    rng, (k_batch, k_drop) = split_rng(state["rng"], 3)
    seq = parallel.shard_batch(self.batch(k_batch, data))
    key = self._train_key()

    def loss_fn(tp):
      params, prefix = self.model_params(state, tp)
      nll, weight = self.scored_nll(params, prefix, seq, k_drop)
      total = jnp.sum(nll * weight)
      return total / jnp.maximum(jnp.sum(weight), 1.0), total

    (loss, total), grads = jax.value_and_grad(loss_fn, has_aux=True)(state[key])
    updates, opt = self.tx.update(grads, state["opt"], state[key])
    new = dict(state, step=state["step"] + 1, rng=rng, opt=opt)
    new[key] = optax.apply_updates(state[key], updates)
    return new, {"loss": loss, **self.step_metrics(loss, total, seq)}

  def next_nll(self, params, prefix, seq, rng=None):
    """(-log p of each next token [B, L-1], the targets [B, L-1]) of token rows [B, L]
    (dropout when `rng` is given)."""
    inputs, targets = seq[:, :-1], seq[:, 1:]
    logits = self.model(params)(inputs, train=rng is not None, rng=rng,
                                prefix=None if prefix is None else cast_floating(prefix, self.compute_dtype))
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
    return nll, targets

  def _check_model(self, ft_methods: tuple) -> None:
    """The checks every Transformer config shares: heads, dropout, fine-tuning, optimizer."""
    c, m = self.config, self.config.model
    if m.d_model % m.num_heads or (m.d_model // m.num_heads) % 2:
      raise ConfigError(f"model.d_model={m.d_model} must split into num_heads={m.num_heads} "
                        "heads of even size (rotary positions)")
    if m.remat not in REMAT_POLICIES:
      raise ConfigError(f"model.remat={m.remat!r}: choose one of {tuple(REMAT_POLICIES)}")
    for k in ("dropout", "cond_dropout"):
      if k in m and not 0.0 <= m[k] < 1.0:
        raise ConfigError(f"model.{k} must be in [0, 1), got {m[k]}")
    if c.finetune.method not in ft_methods:
      raise ConfigError(f"unknown finetune.method {c.finetune.method!r} for {c.task}; choose "
                        f"one of {ft_methods}")
    optim.validate(c.optim)

  def _init_model(self) -> None:
    c, m = self.config, self.config.model
    model = nnx.eval_shape(lambda: self.build(jax.random.key(0)))
    self.graphdef, abstract = nnx.split(model)
    pure = nnx.to_pure_dict(abstract)
    self.num_params = peft.count(pure)
    self.tx = optim.make_optimizer(c.optim, c.train.steps)
    if c.finetune.method != "none":
      self.finetune = peft.FineTune(
          c.finetune, {"params": (pure, model.layer_order, c.finetune.method)},
          prefix_shape=(m.num_layers, c.finetune.prefix_len, m.num_heads, m.d_model // m.num_heads))
      self.tx = self.finetune.optimizer("params", self.tx)

  def weight_keys(self):
    return ("params",) if self.finetune is None else ()   # PEFT runs: merge first

  def param_axes(self):
    return {"params": logical.abstract_axes(lambda: self.build(jax.random.key(0)))}

  def _train_key(self):
    return "params" if self.finetune is None else self.finetune.key("params")

  def warm_start(self):
    return self.config.finetune.init_from if self.finetune is not None else ""

  def init_state(self, seed):
    k_model, k_run = jax.random.split(jax.random.key(seed))
    params = nnx.to_pure_dict(nnx.state(self.build(k_model)))
    state = {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(k_run), "params": params}
    if self.finetune is not None:
      state.update(self.finetune.init({"params": params}, jax.random.fold_in(k_model, peft.PEFT_STREAM)))
    state["opt"] = self.tx.init(state[self._train_key()])
    return state

  def from_pretrained(self, state, pretrained):
    return dict(state, params=peft.load_pretrained(state["params"], pretrained["params"], "model"))

  def trainable_count(self) -> int:
    abstract = jax.eval_shape(self.init_state, 0)
    if self.finetune is None:
      return peft.count(abstract["params"])
    return self.finetune.trainable_count(abstract)

  def model_params(self, state, trainable=None):
    """The network's weights (LoRA folded in) and the prefix (or None)."""
    if self.finetune is None:
      return (state["params"] if trainable is None else trainable), None
    return (self.finetune.weights(state, "params", trainable),
            self.finetune.prefix(state, "params", trainable))

  def model(self, params):
    return nnx.merge(self.graphdef, cast_floating(params, self.compute_dtype))
