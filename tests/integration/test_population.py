"""Populations: R models in one program; replica r equals the single run it stands for."""

import jax
import numpy as np
import pytest

from artjax import ConfigError
from artjax.tasks import open_run as load_state
from artjax.tasks.training import train
from helpers import run_cli, small_config


@pytest.mark.slow   # 5 s: make test-slow
def test_replica_equals_single_run(tmp_path):
  pop = small_config(steps=40, sample_every=20)
  pop.train.num_replicas = 2
  pop.population.lr = (2e-4, 4e-4)
  pop.population.ema_decay = (0.99, 0.9)
  s = train(pop, str(tmp_path / "pop"), quiet=True)
  assert "d_loss/r0" in s and "d_loss/r1" in s
  assert (tmp_path / "pop" / "samples" / "step_0000040_r1.png").exists()

  single = small_config(steps=40)
  single.seed = pop.seed + 1
  single.optim.lr = 4e-4
  single.gan.ema_decay = 0.9
  train(single, str(tmp_path / "single"), quiet=True)

  _, r1 = load_state(str(tmp_path / "pop"), replica=1)
  _, one = load_state(str(tmp_path / "single"))
  for path, a in jax.tree_util.tree_flatten_with_path(one)[0]:
    if "hyperparams" in jax.tree_util.keystr(path):
      continue   # lr 4e-4 is (2e-4 peak) x (scale 2) in the population, 4e-4 x 1 alone
    b = dict(jax.tree_util.tree_flatten_with_path(r1)[0])[path]
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6,
                               err_msg=jax.tree_util.keystr(path))
  _, r0 = load_state(str(tmp_path / "pop"), replica=0)
  assert not np.allclose(r0["g"]["out"]["kernel"], r1["g"]["out"]["kernel"])

  out = tmp_path / "s.npz"
  r = run_cli("sample", f"--workdir={tmp_path / 'pop'}", "--num=10", f"--out={out}", "--replica=1")
  assert r.returncode == 0, r.stderr[-1500:]
  r = run_cli("sample", f"--workdir={tmp_path / 'pop'}", "--num=10", f"--out={out}")
  assert r.returncode != 0 and "--replica" in r.stderr.strip().splitlines()[-1]


def test_population_list_length_checked(tmp_path):
  c = small_config(steps=20)
  c.train.num_replicas = 3
  c.population.lr = (1e-4, 2e-4)
  with pytest.raises(ConfigError, match="population.lr has 2 values"):
    train(c, str(tmp_path / "x"), quiet=True)
