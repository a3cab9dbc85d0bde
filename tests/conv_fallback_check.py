"""Compiles every convolutional program artjax runs -- each conv task's training dispatch as
the loop compiles it (`lax.scan` of steps), its sampling, and the whole-optimisation programs
(projection, inversion repair, style transfer by optimisation, translation) -- with XLA's
logging of unoptimised convolutions on, and prints one JSON line: the fallbacks per program.

  python tests/conv_fallback_check.py WORKDIR [--only=NAME,...]

XLA:CPU says "Falling back to unoptimized convolution" (thunk_emitter, verbosity 2) for each
convolution it emits as a naive loop. The persistent compilation cache is off (a cached
program is not compiled, so it would log nothing), and a positive control -- a strided
`lax.conv_general_dilated` differentiated inside a `lax.scan` -- must be seen falling back,
or the check is void. Used by tests/slow/test_conv_fallback_slow.py.
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
os.environ["TF_CPP_VMODULE"] = "thunk_emitter=2"
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

MARK = "=== conv-check program: "


def _mark(name):
  print(MARK + name, file=sys.stderr, flush=True)


def _control():
  import jax
  import jax.numpy as jnp

  def loss(k, x):
    y = jax.lax.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(y ** 2)

  def body(k, _):
    return k - 1e-3 * jax.grad(loss)(k, jnp.ones((2, 8, 8, 3))), None
  jax.jit(lambda k: jax.lax.scan(body, k, None, length=2)[0]).lower(jnp.ones((4, 4, 3, 5))).compile()


def _pictures(d):
  """A few colour photos (scikit-image) as PNG files in `d`."""
  import numpy as np
  from PIL import Image
  from skimage import data
  os.makedirs(d, exist_ok=True)
  for name in ("astronaut", "coffee", "chelsea"):
    img = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB").resize((48, 40))
    img.save(os.path.join(d, f"{name}.png"))
  return d


def _run(*args):
  from helpers import run_cli
  r = run_cli(*args)
  if r.returncode:
    raise SystemExit(f"check failed: run.py {' '.join(args)}: {r.stderr.strip().splitlines()[-1:]}")


def _digits_inputs(wd):
  import numpy as np
  from configs.gan import get_config
  from artjax.image import data as image_data
  ds = image_data.load(get_config("digits").data)
  imgs = np.asarray(ds.images("test")[:4])
  masks = np.zeros(imgs.shape[:3], bool)
  masks[:, 2:5, 2:5] = True
  np.savez(os.path.join(wd, "in.npz"), images=imgs)
  np.savez(os.path.join(wd, "m.npz"), masks=masks)


def programs(tmp):
  """(name, callable) for every program to compile, in order."""
  pics = os.path.join(tmp, "pics")
  w = lambda n: os.path.join(tmp, n)
  smoke = ("--config.train.steps=4", "--config.train.steps_per_dispatch=2",
           "--config.train.log_every=2", "--config.train.ckpt_every=4",
           "--config.train.sample_every=4", "--config.train.eval_every=4")
  return [
      ("control", _control),
      ("pictures", lambda: (_pictures(pics), _digits_inputs(tmp))),
      ("dcgan:train", lambda: _run("train", "--config=configs/gan.py:digits,smoke",
                                   "--config.model.name=dcgan", f"--workdir={w('dcgan')}", *smoke)),
      ("dcgan:sample", lambda: _run("sample", f"--workdir={w('dcgan')}", "--num=8",
                                    f"--out={w('dcgan_s.npz')}")),
      ("dcgan:repair", lambda: _run("repair", f"--workdir={w('dcgan')}",
                                    f"--images={w('in.npz')}", f"--masks={w('m.npz')}",
                                    "--steps=4", "--restarts=1", f"--out={w('dcgan_r.npz')}")),
      ("projected:train", lambda: _run("train", "--config=configs/projected.py:emoji32,smoke",
                                       f"--workdir={w('pj')}", *smoke)),
      ("stylegan:train", lambda: _run("train", "--config=configs/stylegan.py:emoji32,smoke",
                                      f"--workdir={w('sg')}", *smoke)),
      ("stylegan_ada:train", lambda: _run("train", "--config=configs/stylegan.py:emoji32,ada,smoke",
                                          f"--workdir={w('sga')}", *smoke)),
      ("stylegan:sample", lambda: _run("sample", f"--workdir={w('sg')}", "--num=4",
                                       f"--out={w('sg_s.npz')}")),
      ("stylegan:project", lambda: _run("project", f"--workdir={w('sg')}", f"--images={pics}",
                                        "--steps=4", f"--out={w('sg_p.npz')}")),
      ("stylegan:project_evaluator", lambda: _run("project", f"--workdir={w('sg')}", f"--images={pics}",
                                                  "--steps=4", "--features=evaluator",
                                                  f"--out={w('sg_pe.npz')}")),
      ("stylegan:project_lite0", lambda: _run("project", f"--workdir={w('sg')}", f"--images={pics}",
                                              "--steps=4", "--features=lite0",
                                              f"--out={w('sg_pl.npz')}")),
      ("style:train", lambda: _run("train", "--config=configs/style.py:default,smoke",
                                   f"--workdir={w('style')}", *smoke)),
      ("style:stylize_net", lambda: _run("stylize", f"--workdir={w('style')}",
                                         f"--content={pics}/coffee.png", f"--out={w('st.png')}")),
      ("style:optimise", lambda: _run("stylize", f"--content={pics}/coffee.png",
                                      f"--style={pics}/astronaut.png", "--size=32", "--steps=4",
                                      "--scales=1", f"--out={w('so.png')}")),
      ("translate:train", lambda: _run("train", "--config=configs/translate.py:emoji32,smoke",
                                       f"--workdir={w('tr')}", *smoke)),
      ("translate:apply", lambda: _run("translate", f"--workdir={w('tr')}", f"--images={pics}",
                                       f"--out={w('tr.npz')}")),
      ("inpaint:train", lambda: _run("train", "--config=configs/repair.py:digits,smoke",
                                     f"--workdir={w('inp')}", *smoke)),
      ("inpaint:repair", lambda: _run("repair", f"--workdir={w('inp')}", f"--images={w('in.npz')}",
                                      f"--masks={w('m.npz')}", f"--out={w('inp_r.npz')}")),
  ]


def main():
  tmp = sys.argv[1]
  only = next((a.split("=", 1)[1].split(",") for a in sys.argv[2:] if a.startswith("--only=")), None)
  done = []
  for name, fn in programs(tmp):
    if only and name not in only and name not in ("control", "pictures"):
      continue
    _mark(name)
    fn()
    done.append(name)
  _mark("end")
  print(json.dumps({"programs": done}), flush=True)


if __name__ == "__main__":
  main()
