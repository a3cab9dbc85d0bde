"""Model parallelism pieces that need no extra devices (the 8-device equivalence runs are in
test_parallel.py), rematerialisation, profiles and sweeps."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from artjax import ConfigError
from artjax.engine import parallel
from artjax.commands.sweep import POPULATION_FIELDS, cells, group_config, groups, parse
from artjax.tasks import build_task
from helpers import music_config, small_config

MESH = AbstractMesh((2, 2, 2), parallel.AXES)


def test_mesh_shape_parsing():
  assert parallel.parse_shape("data=2,fsdp=2,tensor=2", 8) == {"data": 2, "fsdp": 2, "tensor": 2}
  assert parallel.parse_shape("fsdp=-1", 8) == {"data": 1, "fsdp": 8, "tensor": 1}
  assert parallel.parse_shape("tensor=2,data=-1", 8) == {"data": 4, "fsdp": 1, "tensor": 2}
  assert parallel.parse_shape("", 4) == {"data": 4, "fsdp": 1, "tensor": 1}
  for bad in ("model=2", "data=3", "data=-1,fsdp=-1", "fsdp=3,data=-1", "data=0", "data=x"):
    with pytest.raises(ConfigError, match="mesh.shape"):
      parallel.parse_shape(bad, 8)


def test_logical_rules_place_axes_and_skip_what_does_not_divide():
  assert parallel.logical_to_spec(("embed", "mlp"), (64, 256), MESH) == P("fsdp", "tensor")
  assert parallel.logical_to_spec(("mlp", "embed"), (256, 64), MESH) == P("tensor", "fsdp")
  assert parallel.logical_to_spec(("embed", "vocab"), (64, 45), MESH) == P("fsdp", None)  # 45 odd
  assert parallel.logical_to_spec(("batch", None), (16, 3), MESH) == P(("data", "fsdp"), None)
  assert parallel.logical_to_spec((None, "heads"), (4, 6), AbstractMesh((1, 1, 2), parallel.AXES)) == P(None, "tensor")
  one = AbstractMesh((1, 1, 1), parallel.AXES)
  assert parallel.logical_to_spec(("embed", "mlp"), (64, 256), one) == P(None, None)


def test_optimizer_state_and_replicas_are_laid_out_like_their_weights():
  c = music_config()
  c.train.num_replicas = 2
  task = build_task(c)
  abstract = jax.eval_shape(task.init_state, 0)
  sh = parallel.state_shardings(abstract, task.param_axes(), MESH)
  qkv = sh["params"]["blocks"][0]["attn"]["qkv"]["kernel"].spec
  assert qkv == P(None, "fsdp", "tensor")                      # [replica, embed, heads]
  assert sh["params"]["blocks"][0]["mlp_out"]["kernel"].spec == P(None, "tensor", "fsdp")
  mu = [s for p, s in jax.tree_util.tree_flatten_with_path(sh["opt"])[0]
        if jax.tree_util.keystr(p).endswith("['blocks'][0]['attn']['qkv']['kernel']")]
  assert mu and all(s.spec == qkv for s in mu)                 # Adam's mu and nu
  assert sh["params"]["norm"]["scale"].spec == P()             # unannotated: replicated
  assert sh["step"].spec == P()


def test_param_bytes_per_device_follow_the_layout():
  a = jax.ShapeDtypeStruct((64, 256), jnp.float32,
                           sharding=jax.sharding.NamedSharding(MESH, P("fsdp", "tensor")))
  assert parallel.bytes_per_device({"w": a}) == 64 * 256 * 4 // 4


@pytest.mark.parametrize("policy", [pytest.param("full", marks=pytest.mark.slow), "dots"])   # full: 5 s, make test-slow
def test_remat_gives_the_same_gradients(policy):
  def grads(remat):
    c = music_config()
    c.model.update(dropout=0.0, remat=remat)
    task = build_task(c)
    state = task.init_state(0)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 40, (2, 32)), jnp.int32)
    model_loss = lambda p: jnp.mean(task.model(p)(x, train=True, rng=jax.random.key(1)) ** 2)
    return jax.jit(jax.grad(model_loss))(state["params"])
  ref, got = grads("none"), grads(policy)
  flat_ref, flat_got = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (ref, got))
  assert [p for p, _ in flat_ref] == [p for p, _ in flat_got]
  for (p, a), (_, b) in zip(flat_ref, flat_got):
    scale = float(jnp.max(jnp.abs(a))) + 1e-12
    assert float(jnp.max(jnp.abs(a - b))) <= 1e-5 * scale, jax.tree_util.keystr(p)


def test_large_config_is_valid():
  from configs.music import get_config
  c = get_config("large")
  assert (c.model.num_layers, c.model.d_model, c.model.remat, c.optim.grad_accum) == (12, 768, "dots", 4)
  task = build_task(c)
  assert task.num_params > 80_000_000
  # Its weights are laid out for FSDP: every large matrix has a logical axis that the rules
  # map to the fsdp mesh axis (checked on the abstract state: nothing is allocated).
  abstract = jax.eval_shape(task.init_state, 0)
  rules = dict(parallel.RULES)
  names = {jax.tree_util.keystr(p): n for p, n in jax.tree_util.tree_flatten_with_path(
      task.param_axes()["params"], is_leaf=lambda v: isinstance(v, tuple))[0]}
  big = [jax.tree_util.keystr(p) for p, x in
         jax.tree_util.tree_flatten_with_path(abstract["params"])[0] if x.size >= 768 * 768]
  assert len(big) >= 12 * 4, len(big)
  for k in big:
    assert any("fsdp" in rules.get(n, ()) for n in names[k] if n), (k, names[k])
  bad = music_config()
  bad.model.remat = "some"
  with pytest.raises(ConfigError, match="remat"):
    build_task(bad)


def test_sweep_grid_groups_cells_that_share_shapes():
  axes = parse("optim.lr=1e-4,4e-4;gan.ema_decay=0.0,0.999;model.width=32,64")
  assert axes[0] == ("optim.lr", [1e-4, 4e-4]) and axes[2] == ("model.width", [32, 64])
  grid = cells(axes)
  assert len(grid) == 8
  c = small_config()
  plan = groups(c, grid)
  assert [len(m) for _, m in plan] == [4, 4]                   # by width; lr x ema as replicas
  gc = group_config(c, *plan[0])
  assert gc.train.num_replicas == 4 and gc.model.width == 32
  assert tuple(gc.population.lr) == (1e-4, 1e-4, 4e-4, 4e-4)
  assert tuple(gc.population.ema_decay) == (0.0, 0.999, 0.0, 0.999) and gc.gan.ema_decay == 0.999
  assert POPULATION_FIELDS["optim.lr"] == "lr"
  for bad, msg in (("optim.nope=1,2", "no config field"), ("optim.lr", "expected"),
                   ("model.width=a,b", "model.width")):
    with pytest.raises(ConfigError, match=msg):
      from artjax.commands.sweep import run_sweep
      run_sweep(c, "/nonexistent/never", bad, lambda *a: None)


def test_a_sweep_stops_at_a_sigterm_between_or_inside_its_runs(tmp_path):
  """SIGTERM between two runs (each run handles its own) or a run that ends interrupted: the
  sweep trains no further group, writes the rest as not_run and its command exits 3."""
  import os
  import signal
  from artjax.commands.sweep import run_sweep
  c = small_config()
  spec = "model.width=16,24,32"     # three groups (different shapes)
  calls = []

  def term_after_first(config, wd):
    calls.append(wd)
    os.kill(os.getpid(), signal.SIGTERM)      # lands after the "run", in the sweep's code
    return {"status": "finished"}
  rows = run_sweep(c, str(tmp_path / "a"), spec, term_after_first)
  assert len(calls) == 1 and [r["status"] for r in rows] == ["finished", "not_run", "not_run"]
  assert signal.getsignal(signal.SIGTERM) is not None    # the previous handler is back

  calls.clear()
  rows = run_sweep(c, str(tmp_path / "b"), spec,
                   lambda config, wd: calls.append(wd) or {"status": "interrupted"})
  assert len(calls) == 1 and [r["status"] for r in rows] == ["interrupted", "not_run", "not_run"]


def test_param_axes_are_names_even_under_an_active_mesh():
  """Benchmarks and hooks ask for the layout inside a mesh context: the logical names must
  come back as names (not be resolved against the mesh's axes, which would fail)."""
  mesh = parallel.make_mesh(1)
  for c in (small_config(), music_config()):
    task = build_task(c)
    outside = task.param_axes()
    with parallel.active_mesh(mesh):
      assert task.param_axes() == outside
  assert outside["params"]["head"]["kernel"] == ("embed", "vocab")
