"""Deployment: `run.py export` (an artifact that runs without artjax and reproduces
`run.py sample` bit for bit), `run.py quantize` (per-channel int8/int4), `run.py prune`
(global magnitude, recovery with the mask fixed), and their bad-input errors."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import run_cli

from artjax.engine import compress
from artjax.tasks import open_run, open_stored

# The loader of docs/deploy.md, run where `import artjax` fails (and the checkout is not on
# the path): jax and numpy only.
LOADER = """
import sys, json, hashlib
sys.modules["artjax"] = None
import numpy as np
from jax import export
d, n = sys.argv[1], int(sys.argv[2])
manifest = json.load(open(f"{d}/manifest.json"))
blob = open(f"{d}/sampler.jaxexport", "rb").read()
if "sha256:" + hashlib.sha256(blob).hexdigest() != manifest["files"]["sampler.jaxexport"]["sha256"]:
    raise SystemExit("sampler.jaxexport is damaged: its sha256 is not the manifest's")
sampler = export.deserialize(blob)
assert [i["name"] for i in manifest["inputs"]] == ["seed", "labels"]
out = sampler.call(np.int32(int(sys.argv[3])), np.arange(n, dtype=np.int32) % 10)
np.save(sys.argv[4], np.asarray(out))
"""


def _load_without_artjax(export_dir, num, seed, tmp_path):
  script, out = tmp_path / "loader.py", tmp_path / "out.npy"
  script.write_text(LOADER)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  r = subprocess.run([sys.executable, str(script), str(export_dir), str(num), str(seed), str(out)],
                     cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  return np.load(out)


def _sample(workdir, num, seed, out):
  r = run_cli("sample", f"--workdir={workdir}", f"--num={num}", f"--seed={seed}", f"--out={out}")
  assert r.returncode == 0, r.stderr
  return np.load(out)


def test_export_multiplatform_reproduces_sample_without_artjax(trained_workdir, tmp_path):
  out = tmp_path / "export"
  r = run_cli("export", f"--workdir={trained_workdir}", f"--out={out}", "--platforms=cpu,cuda,tpu")
  assert r.returncode == 0, r.stderr
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["platforms"] == ["cpu", "cuda", "tpu"] and manifest["task"] == "gan"
  assert [i["name"] for i in manifest["inputs"]] == ["seed", "labels"]
  assert manifest["inputs"][1]["shape"] == ["B"] and manifest["outputs"][0]["shape"][0] == "B"
  assert manifest["step"] == 200 and manifest["config_digest"].startswith("sha256:")
  ref = _sample(trained_workdir, 30, 5, tmp_path / "s.npz")
  got = _load_without_artjax(out, 30, 5, tmp_path)
  assert got.dtype == np.uint8 and np.array_equal(got, ref["images"])


def test_quantize_int8_int4_sample_and_export(trained_workdir, tmp_path):
  fp = tmp_path / "fp"
  assert run_cli("export", f"--workdir={trained_workdir}", f"--out={fp}").returncode == 0
  ref = _sample(trained_workdir, 50, 1, tmp_path / "ref.npz")["images"].astype(np.int32)
  sizes = {}
  for bits in (8, 4):
    q, e = tmp_path / f"q{bits}", tmp_path / f"e{bits}"
    r = run_cli("quantize", f"--workdir={trained_workdir}", f"--out={q}", f"--bits={bits}")
    assert r.returncode == 0, r.stderr
    task, stored, _ = open_stored(str(q))
    kernel_dtypes = {x.dtype for x in jax.tree.leaves(stored) if x.ndim >= 2}
    assert kernel_dtypes == {np.dtype(np.int8 if bits == 8 else np.uint8)}
    _, state = open_run(trained_workdir)
    kernels = [x for x in jax.tree.leaves(task.inference_state(state)) if compress.compressible(x)]
    packed = [x for x in jax.tree.leaves(stored) if x.ndim >= 2]
    assert compress.nbytes(packed) <= compress.nbytes(kernels) * bits / 32 + 64
    got = _sample(q, 50, 1, tmp_path / f"s{bits}.npz")["images"]
    err = np.abs(got.astype(np.int32) - ref).mean()
    assert 0 < err < (3 if bits == 8 else 20), err    # close to fp32, not identical
    assert run_cli("export", f"--workdir={q}", f"--out={e}").returncode == 0
    exp = jax.export.deserialize((e / "sampler.jaxexport").read_bytes())
    assert np.array_equal(np.asarray(exp.call(np.int32(1), np.arange(50, dtype=np.int32) % 10)), got)
    sizes[bits] = (e / "sampler.jaxexport").stat().st_size
  # the smoke model is tiny (the module's text is a large share of its export); the default
  # run's figures (int8 export 0.26x fp32) are benchmarks/compress.py's
  fp_size = (fp / "sampler.jaxexport").stat().st_size
  assert sizes[8] <= 0.45 * fp_size and sizes[4] < 0.8 * sizes[8], (sizes, fp_size)


def test_quantize_roundtrip_error_bound():
  rng = np.random.default_rng(0)
  tree = {"k": jnp.asarray(rng.normal(size=(7, 3, 5)), jnp.float32),
          "b": jnp.asarray(rng.normal(size=(5,)), jnp.float32)}
  for bits in (8, 4):
    q = compress.quantize(tree, bits)
    assert q["b"] is tree["b"] and set(q["k"]) == {f"int{bits}", "scale"}
    back = compress.dequantize(q, tree)
    scale = np.asarray(q["k"]["scale"])
    err = np.abs(np.asarray(back["k"]) - np.asarray(tree["k"]))
    assert np.all(err <= scale / 2 + 1e-6)
    # the largest |w| of each output channel is represented exactly (symmetric range)
    assert np.allclose(np.abs(np.asarray(back["k"])).max((0, 1)), np.abs(np.asarray(tree["k"])).max((0, 1)))


def test_magnitude_mask_is_global():
  tree = {"a": jnp.arange(1.0, 9.0).reshape(2, 4), "b": jnp.arange(9.0, 13.0).reshape(2, 2) * -1,
          "bias": jnp.zeros(3)}
  mask = compress.magnitude_mask(tree, 0.5)
  assert int(mask["a"].sum()) == 2 and bool(mask["b"].all()) and bool(mask["bias"].all())
  assert compress.sparsity_of(compress.apply_mask(tree, mask)) == 0.5


@pytest.fixture(scope="module")
def pruned_run(trained_workdir, tmp_path_factory):
  p0 = tmp_path_factory.mktemp("pruned") / "p0"
  r = run_cli("prune", f"--workdir={trained_workdir}", f"--out={p0}", "--sparsity=0.6")
  assert r.returncode == 0, r.stderr
  return p0


def test_prune_is_global_on_both_generators_and_quantises(pruned_run, trained_workdir, tmp_path):
  _, before = open_run(trained_workdir)
  _, state = open_run(str(pruned_run))
  for key in ("ema", "g"):
    assert abs(compress.sparsity_of(state[key]) - 0.6) < 0.01
    dense = [np.asarray(x) for x in jax.tree.leaves(before[key])]
    for b, a in zip(dense, jax.tree.leaves(state[key]), strict=True):
      a = np.asarray(a)
      assert np.all((a == b) | (a == 0))                  # kept weights unchanged
  kept = np.abs(np.concatenate([np.asarray(a)[np.asarray(a) != 0] for a in jax.tree.leaves(state["ema"])
                                if a.ndim >= 2]))
  dropped = np.abs(np.concatenate([b[np.asarray(a) == 0] for a, b in zip(
      jax.tree.leaves(state["ema"]), [np.asarray(x) for x in jax.tree.leaves(before["ema"])])
      if a.ndim >= 2]))
  assert dropped.max() <= kept.min()                       # global magnitude order
  q = tmp_path / "pq"   # a pruned run quantises and samples like any other
  assert run_cli("quantize", f"--workdir={pruned_run}", f"--out={q}").returncode == 0
  assert _sample(q, 10, 0, tmp_path / "pq.npz")["images"].shape[0] == 10


def test_music_export_reproduces_sample(music_workdir, tmp_path):
  out = tmp_path / "m"
  r = run_cli("export", f"--workdir={music_workdir}", f"--out={out}")
  assert r.returncode == 0, r.stderr
  manifest = json.loads((out / "manifest.json").read_text())
  assert [i["name"] for i in manifest["inputs"]] == ["seed", "modes", "key_guidance"]
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=3", "--seed=2", f"--out={tmp_path / 's'}")
  assert r.returncode == 0, r.stderr
  ref = np.load(tmp_path / "s" / "samples.npz")
  exp = jax.export.deserialize((out / "sampler.jaxexport").read_bytes())
  got = np.asarray(exp.call(np.int32(2), ref["modes"].astype(np.int32), np.float32(0)))
  assert np.array_equal(got, ref["tokens"])
  more = np.asarray(exp.call(np.int32(2), np.arange(5, dtype=np.int32) % 2, np.float32(0)))
  assert np.array_equal(more[:3], got)     # a row does not depend on the batch size


@pytest.fixture(scope="module")
def quantized(trained_workdir, tmp_path_factory):
  q = tmp_path_factory.mktemp("deploy") / "q"
  assert run_cli("quantize", f"--workdir={trained_workdir}", f"--out={q}").returncode == 0
  return q


@pytest.mark.parametrize("args, message", [
    (("export", "--workdir={missing}", "--out={out}"), "does not exist"),
    (("export", "--workdir={empty}", "--out={out}"), "no config.json"),
    (("export", "--workdir={run}", "--out={out}", "--platforms=cpu,gpu"), "unknown platform 'gpu'"),
    (("quantize", "--workdir={q}", "--out={out}"), "already quantised"),
    (("quantize", "--workdir={run}", "--out={out}", "--bits=3"), "--bits must be 8 or 4"),
    (("prune", "--workdir={run}", "--out={out}", "--sparsity=0"), "--sparsity must be in (0, 1)"),
    (("prune", "--workdir={run}", "--out={out}", "--sparsity=1.5"), "--sparsity must be in (0, 1)"),
    (("export", "--workdir={run}", "--out={q}"), "not an empty directory"),
])
def test_bad_input_is_one_error_line_and_nothing_written(trained_workdir, quantized, tmp_path,
                                                        args, message):
  q = quantized
  (tmp_path / "empty").mkdir()
  names = dict(missing=tmp_path / "missing", empty=tmp_path / "empty", run=trained_workdir,
               q=q, out=tmp_path / "out")
  listing = sorted(os.listdir(q))
  r = run_cli(*(a.format(**names) for a in args))
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
  assert not (tmp_path / "out").exists() and sorted(os.listdir(q)) == listing


def test_normal_rows_equal_rows_of_a_jax_random_draw():
  from artjax.tasks.rows import normal_rows
  seeds = np.array([0, 3, 3, 2**31 - 1, 77], np.int32)
  rows = np.array([0, 5, 63, 17, 200], np.int32)
  got = np.asarray(jax.jit(normal_rows, static_argnums=2)(seeds, rows, 64))
  for b, (s, r) in enumerate(zip(seeds, rows)):
    ref = np.asarray(jax.random.normal(jax.random.key(int(s)), (r + 1 + b, 64)))[r]
    assert np.array_equal(got[b], ref)


def _flip(path, at=200, n=64):
  b = bytearray(path.read_bytes())
  for i in range(at, at + n):
    b[i] ^= 0xFF
  path.write_bytes(bytes(b))


@pytest.mark.parametrize("damage, needle", [
    (lambda d: _flip(d / "sampler.jaxexport"), "sampler.jaxexport is damaged"),
    (lambda d: _flip(d / "rows.jaxexport"), "rows.jaxexport is damaged"),
    (lambda d: (d / "rows.jaxexport").write_bytes((d / "rows.jaxexport").read_bytes()[:1000]), "damaged"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not readable JSON"),
    (lambda d: (d / "manifest.json").write_text(""), "not readable JSON"),
    (lambda d: (d / "manifest.json").write_text("[1, 2]"), "not an artjax export manifest"),
    (lambda d: _edit(d, lambda m: m.pop("step")), "not an artjax export manifest"),
    (lambda d: _edit(d, lambda m: m.update(num_classes=100)), "edited or damaged"),
    (lambda d: _edit(d, lambda m: m.update(kind="poems")), "edited or damaged"),
    (lambda d: (d / "rows.jaxexport").unlink(), "has no rows.jaxexport"),
    # issue #47: edited AND re-hashed manifests with malformed fields: one error, no traceback
    (lambda d: _edit(d, lambda m: m.update(step="abc"), rehash=True), "step 'abc' is not"),
    (lambda d: _edit(d, lambda m: m["files"].update(x="y"), rehash=True), "files entry is malformed"),
    (lambda d: _edit(d, lambda m: m["files"].update({"../x": m["files"]["rows.jaxexport"]}),
                     rehash=True), "files entry is malformed"),
    (lambda d: _edit(d, lambda m: m.update(num_classes=-1), rehash=True), "num_classes -1"),
    (lambda d: _edit(d, lambda m: m.update(num_classes=100), rehash=True), "but its artifact has 10"),
])
def test_damaged_artifacts_and_manifests_are_refused(trained_workdir, tmp_path, damage, needle):
  out = tmp_path / "export"
  assert run_cli("export", f"--workdir={trained_workdir}", f"--out={out}").returncode == 0
  manifest = json.loads((out / "manifest.json").read_text())
  assert not any(str(v).startswith("/") for v in manifest.values() if isinstance(v, str))
  assert manifest["files"]["sampler.jaxexport"]["sha256"].startswith("sha256:")
  damage(out)
  from artjax import ConfigError
  from artjax.serve import models
  with pytest.raises(ConfigError, match=needle):
    models.load(str(out), "x", max_num=4, max_batch=4, max_music=1)
  if "sampler.jaxexport is damaged" in needle:   # the docs' standalone loader refuses it too
    script = tmp_path / "loader.py"
    script.write_text(LOADER)
    r = subprocess.run([sys.executable, str(script), str(out), "4", "0", str(tmp_path / "o.npy")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "damaged" in r.stderr


def _edit(d, fn, rehash=False):
  m = json.loads((d / "manifest.json").read_text())
  fn(m)
  if rehash:
    from artjax.deploy import manifest_digest
    m["manifest_sha256"] = manifest_digest(m)
  (d / "manifest.json").write_text(json.dumps(m))
