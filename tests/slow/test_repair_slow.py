"""The long (make test-slow) tests of integration/test_repair.py."""

import os
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from helpers import run_cli
from artjax.tasks import datasets as data_lib
from artjax.tasks import open_run
from artjax.engine import workdir as runs
from artjax.image import inversion, masks as masks_lib
from test_repair import digits  # noqa: F401


@pytest.mark.slow
def test_inpainting_network_trains_on_the_loop(digits, tmp_path):
  from configs.repair import get_config
  from artjax.tasks.training import train
  import json
  d, x, damaged, m = digits
  wd = str(tmp_path / "net")
  c = get_config("smoke")
  c.train.update(steps=60, eval_every=20)
  assert train(c, wd, quiet=True)["status"] == "finished"
  evals = [json.loads(l)["eval/val_rmse"] for l in open(os.path.join(wd, "metrics.jsonl")) if "val_rmse" in l]
  assert evals[-1] < evals[0], evals
  r = run_cli("repair", f"--workdir={wd}", f"--images={d}/in.npz", f"--masks={d}/m.npz",
              f"--out={tmp_path}/net.npz", "--method=net")
  assert r.returncode == 0, r.stderr
  out = np.load(tmp_path / "net.npz")["images"]
  np.testing.assert_array_equal(out[~m], damaged[~m])
  r = run_cli("repair", f"--workdir={wd}", f"--images={d}/in.npz", f"--masks={d}/m.npz",
              f"--out={tmp_path}/x.npz", "--method=invert")
  assert r.returncode == 2 and "needs an image GAN" in r.stderr and not os.path.exists(tmp_path / "x.npz")
