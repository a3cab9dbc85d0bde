"""Deployment artifacts from a workdir: `run.py export`, `run.py quantize`, `run.py prune`.

    export    DIR/sampler.jaxexport (a serialized `jax.export.Exported` of the run's sampler,
              weights inside as constants, batch dimension B symbolic) + DIR/manifest.json.
              Loading needs jax and numpy only (and flatbuffers): see docs/deploy.md.
    quantize  a workdir holding only the sampled weights, kernels as int8/int4 with fp32
              per-output-channel scales (or bf16); `sample`, `eval` and `export` read it,
              and its export stores the packed weights and dequantises inside the function.
    prune     a workdir of the same task with the smallest weights zeroed (global
              magnitude), optionally trained on (recovery) with the zeros held fixed.

Every check runs before anything is written; a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import numpy as np
from jax import export as jax_export

from artjax import ConfigError
from artjax.tasks import open_run, open_stored
from artjax.engine import checkpoint, compress, workdir as runs
from artjax.tasks import build_task, pruned, quant_bits
from artjax.tasks.training import train

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
ARTIFACT, ROWS, MANIFEST = "sampler.jaxexport", "rows.jaxexport", "manifest.json"
WALK = "walk.jaxexport"
#: what the artifact itself says of the model (image GANs: the number of classes), to check
#: the manifest against: a manifest edited and re-hashed cannot change it
META = "meta.jaxexport"
#: rows per seed of the exported row sampler (the service's most images per request)
ROWS_MAX_NUM = 64
LOADER = """import hashlib, json, numpy as np
from jax import export
d = "DIR"   # the export directory
manifest = json.load(open(f"{d}/manifest.json"))   # inputs, outputs, notes, file digests
blob = open(f"{d}/sampler.jaxexport", "rb").read()
if "sha256:" + hashlib.sha256(blob).hexdigest() != manifest["files"]["sampler.jaxexport"]["sha256"]:
    raise SystemExit("sampler.jaxexport is damaged: its sha256 is not the manifest's")
sampler = export.deserialize(blob)
out = sampler.call(np.int32(0), np.arange(16, dtype=np.int32) % 10)   # (seed, labels | modes)
print(np.asarray(out).shape)"""
POEM_LOADER = """import json, numpy as np
from jax import export
d = "DIR"   # the export directory (check the sha256 digests as above)
sampler = export.deserialize(open(f"{d}/sampler.jaxexport", "rb").read())
t = np.load(f"{d}/poetry.npz")
form, decoding, num = "qilu", "strict", 4      # decoding: strict | template
tables = [t[f"{form}/{decoding}/{k}"] for k in
          ("tone", "template_ok", "rhyme_pos", "groups", "group_ok", "no_repeat")]
prompt = np.tile(np.int32([1, 5 + list(t["forms"]).index(form), 4]), (num, 1))  # BOS FORM ANY
tokens = np.asarray(sampler.call(np.int32(0), prompt, *tables))
chars, c0 = t["chars"], int(t["char0"])
for row in tokens:
    end = list(row).index(2) if 2 in row else len(row)   # EOS
    print("".join(chars[i - c0] for i in row[:end] if i >= c0))"""


def _fresh_out(out: str, what: str) -> None:
  if not out:
    raise ConfigError(f"{what} needs --out=DIR")
  if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    raise ConfigError(f"--out {out!r} exists and is not an empty directory; choose a new one")


def _source_config(workdir: str):
  if not workdir:
    raise ConfigError("needs --workdir=RUN (a trained workdir)")
  if not os.path.isdir(workdir):
    raise ConfigError(f"workdir {workdir!r} does not exist")
  config = runs.load_config(workdir)
  if not checkpoint.steps(workdir):
    raise ConfigError(f"workdir {workdir!r} has no checkpoint yet: train it first")
  return config


def parse_platforms(text) -> tuple:
  names = tuple(p.strip().lower() for p in (text if isinstance(text, (list, tuple)) else
                                             str(text).split(",")) if p.strip())
  bad = [p for p in names if p not in PLATFORMS]
  if bad or not names:
    raise ConfigError(f"unknown platform {bad[0] if bad else '(none)'!r}; choose from "
                      f"{', '.join(PLATFORMS)} (comma-separated)")
  return tuple(dict.fromkeys(names))


def _avals(specs, batch):
  return tuple(jax.ShapeDtypeStruct(tuple(batch if d == "B" else d for d in shape), np.dtype(dt))
               for _, dt, shape, _ in specs)


def _describe(specs):
  return [{"name": n, "dtype": dt, "shape": list(shape), "meaning": m} for n, dt, shape, m in specs]


def _config_digest(workdir: str) -> str:
  with open(os.path.join(workdir, runs.CONFIG), "rb") as f:
    return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def _export(fn, spec, platforms):
  batch, = jax_export.symbolic_shape("B")
  return jax_export.export(jax.jit(fn), platforms=platforms)(*_avals(spec.inputs, batch))


def _signature(spec) -> dict:
  return {"function": "f(" + ", ".join(n for n, *_ in spec.inputs) + ") -> " +
                      ", ".join(n for n, *_ in spec.outputs),
          "inputs": _describe(spec.inputs), "outputs": _describe(spec.outputs),
          "notes": spec.notes}


def exported(workdir: str, platforms=("cpu",), best: bool = False):
  """({"sampler": Exported, "rows": Exported or absent}, manifest dict) of a workdir."""
  task, stored, unpack = open_stored(workdir, best=best)
  abstract = jax.eval_shape(unpack, stored)
  spec = task.sampler(abstract)
  out = {"sampler": _export(lambda *a: task.sampler(unpack(stored)).fn(*a), spec, platforms)}
  config = runs.load_config(workdir)
  manifest = {
      "artifact": ARTIFACT, "task": config.task, "model": task.describe(),
      "kind": task.sample_kind, "step": int(stored["step"]),
      "source": os.path.basename(os.path.normpath(workdir)), "checkpoint": "best" if best else "latest",
      "config_digest": _config_digest(workdir),
      "weights": {"bits": quant_bits(config) or 32, "bytes": compress.nbytes(stored),
                  "pruned_sparsity": float(config.prune.sparsity) if pruned(config) else 0.0},
      **_signature(spec),
      "batch_dimension": "B (symbolic: any batch size, compiled on first call per size)",
      "platforms": list(out["sampler"].platforms), "jax_version": jax.__version__,
      "loader": LOADER}
  rows = task.row_sampler(abstract, ROWS_MAX_NUM)
  if rows is not None:
    out["rows"] = _export(lambda *a: task.row_sampler(unpack(stored), ROWS_MAX_NUM).fn(*a),
                          rows, platforms)
    manifest["rows"] = {"artifact": ROWS, "max_num": ROWS_MAX_NUM, **_signature(rows)}
  spec = task.walk_sampler(abstract)
  if spec is not None:
    out["walk"] = _export(lambda *a: task.walk_sampler(unpack(stored)).fn(*a), spec, platforms)
    manifest["walk"] = {"artifact": WALK, **_signature(spec)}
  files = task.export_files()
  if files:
    out["files"] = files
  if task.sample_kind == "poems":
    manifest["loader"] = POEM_LOADER
  if task.sample_kind == "images":   # image GANs: 0 = unconditional
    manifest["num_classes"] = int(task.num_classes) if task.conditional else 0
    nc = np.int32(manifest["num_classes"])
    out["meta"] = jax_export.export(jax.jit(lambda: nc), platforms=platforms)()
  return out, manifest


def export_workdir(workdir: str, out: str, platforms=("cpu",), best: bool = False) -> dict:
  """Writes out/sampler.jaxexport and out/manifest.json; returns the manifest."""
  platforms = parse_platforms(platforms)
  _source_config(workdir)
  _fresh_out(out, "export")
  exps, manifest = exported(workdir, platforms, best)
  blobs = {ARTIFACT: exps["sampler"].serialize()}
  if "rows" in exps:
    blobs[ROWS] = exps["rows"].serialize()
  if "walk" in exps:
    blobs[WALK] = exps["walk"].serialize()
  if "meta" in exps:
    blobs[META] = exps["meta"].serialize()
  extras = exps.get("files", {})
  blobs.update(extras)
  manifest["artifact_bytes"] = len(blobs[ARTIFACT])
  manifest["files"] = {name: {"sha256": _sha256(blob), "bytes": len(blob)} for name, blob in blobs.items()}
  manifest["manifest_sha256"] = manifest_digest(manifest)
  os.makedirs(out, exist_ok=True)
  for name, blob in blobs.items():
    with open(os.path.join(out, name), "wb") as f:
      f.write(blob)
  with open(os.path.join(out, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=2)
  print(f"wrote {os.path.join(out, ARTIFACT)} ({len(blobs[ARTIFACT]) / 1e6:.2f} MB, "
        f"{manifest['function']}, platforms {','.join(manifest['platforms'])})"
        + (f", {ROWS} (the service's row sampler)" if ROWS in blobs else "") + f" and {MANIFEST}")
  return manifest


def _sha256(blob: bytes) -> str:
  return "sha256:" + hashlib.sha256(blob).hexdigest()


def manifest_digest(manifest: dict) -> str:
  """sha256 of the manifest's canonical JSON without its own digest: any edit shows."""
  body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
  return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _read_manifest(d: str) -> dict:
  path = os.path.join(d, MANIFEST)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path} is not readable JSON ({' '.join(str(e).split())[:120]}): "
                      "export the run again") from e
  if not isinstance(manifest, dict) or not {"kind", "step", "files", "manifest_sha256"} <= set(manifest):
    raise ConfigError(f"{path} is not an artjax export manifest (kind, step, files and "
                      "manifest_sha256 expected): export the run again with this version")
  if manifest_digest(manifest) != manifest["manifest_sha256"]:
    raise ConfigError(f"{path} was edited or damaged (its sha256 is not the one it records): "
                      "export the run again")
  problem = _manifest_problem(manifest)
  if problem:
    raise ConfigError(f"{path}: {problem} (edited and re-hashed?): export the run again")
  return manifest


def _count(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _manifest_problem(m: dict) -> str | None:
  """What is malformed in a manifest whose digest holds (a re-hashed edit), or None."""
  if not _count(m["step"]):
    return f"step {m['step']!r} is not a step number"
  if not isinstance(m["kind"], str):
    return f"kind {m['kind']!r} is not a name"
  files = m["files"]
  ok = isinstance(files, dict) and files and all(
      isinstance(n, str) and n == os.path.basename(n) and n not in ("", ".", "..")
      and isinstance(e, dict) and isinstance(e.get("sha256"), str) and _count(e.get("bytes"))
      for n, e in files.items())
  if not ok:
    return "its files entry is malformed"
  if "num_classes" in m and not _count(m["num_classes"]):
    return f"num_classes {m['num_classes']!r} is not a count"
  return None


def load_export(d: str, names=None) -> tuple[dict, dict]:
  """({file name: Exported}, manifest) of an export directory, every file checked against
  the manifest's sha256 before it is deserialised, and the manifest's number of classes
  against the artifact's own (META); a damaged or edited manifest or artifact, or a missing
  one, is one ConfigError naming the file."""
  manifest = _read_manifest(d)
  if META in manifest["files"]:
    meta = _deserialised(d, manifest, [META])[META]
    if "cpu" in meta.platforms:
      own = int(np.asarray(meta.call()))
      if own != manifest.get("num_classes", 0):
        raise ConfigError(f"{os.path.join(d, MANIFEST)} says num_classes="
                          f"{manifest.get('num_classes')} but its artifact has {own} (edited and "
                          "re-hashed?): export the run again")
  return _deserialised(d, manifest, names), manifest


def _deserialised(d: str, manifest: dict, names) -> dict:
  files = manifest["files"]
  out = {}
  for name in names or [n for n in files if n.endswith(".jaxexport")]:
    path = os.path.join(d, name)
    if name not in files or not os.path.isfile(path):
      raise ConfigError(f"export directory {d!r} has no {name} (export it again with this "
                        "version of run.py export)")
    with open(path, "rb") as f:
      blob = f.read()
    if _sha256(blob) != files[name].get("sha256"):
      raise ConfigError(f"{path} is damaged: its sha256 is not the manifest's (export it again)")
    try:
      out[name] = jax_export.deserialize(blob)
    except Exception as e:   # a digest collision is out of reach; this is a version mismatch
      raise ConfigError(f"{path} does not deserialise with jax {jax.__version__} "
                        f"({' '.join(str(e).split())[:120]})") from e
  return out


def read_file(d: str, name: str) -> bytes:
  """The bytes of a file an export directory's manifest lists (e.g. poetry.npz), checked
  against its sha256; ConfigError when it is missing or damaged."""
  files = _read_manifest(d)["files"]
  path = os.path.join(d, name)
  if name not in files or not os.path.isfile(path):
    raise ConfigError(f"export directory {d!r} has no {name} (export it again with this version)")
  with open(path, "rb") as f:
    blob = f.read()
  if _sha256(blob) != files[name].get("sha256"):
    raise ConfigError(f"{path} is damaged: its sha256 is not the manifest's (export it again)")
  return blob


def _model_task(workdir: str, config, command: str):
  if config.train.num_replicas != 1:
    raise ConfigError(f"{command}: {workdir!r} holds a population; {command} a single run")
  task = build_task(config)
  inner = task.unwrapped
  if not inner.weight_keys():
    raise ConfigError(f"{command}: {workdir!r} is a {type(inner).__name__} run with no "
                      "deployable model, or a fine-tuning run with LoRA/adapter/prefix factors "
                      "(merge it first: run.py merge)")
  return inner


def quantize_workdir(workdir: str, out: str, bits: int) -> dict:
  """Writes a quantised workdir; returns {"bits", "bytes_before", "bytes_after"}."""
  if bits not in compress.BITS:
    raise ConfigError(f"--bits must be 8 or 4 (or 16 for bf16 storage), got {bits}")
  config = _source_config(workdir)
  if quant_bits(config):
    raise ConfigError(f"{workdir!r} is already quantised ({quant_bits(config)} bits); quantise "
                      f"its source {config.deploy.source!r} instead")
  _model_task(workdir, config, "quantize")
  _fresh_out(out, "quantize")
  task, state = open_run(workdir)
  inference = task.inference_state(state)
  packed = jax.jit(lambda s: compress.quantize(s, bits))(inference)
  new = config.copy_and_resolve_references()
  new.deploy = dict(quant_bits=bits, source=os.path.abspath(workdir), source_step=int(state["step"]))
  runs.write_run(out, new, int(state["step"]), packed)
  result = {"bits": bits, "bytes_before": compress.nbytes(inference),
            "bytes_after": compress.nbytes(packed)}
  kind = "bf16 kernels" if bits == 16 else f"int{bits} kernels, fp32 per-channel scales"
  print(f"wrote {out}: weights {result['bytes_before'] / 1e6:.2f} MB -> "
        f"{result['bytes_after'] / 1e6:.2f} MB ({kind})")
  return result


def prune_config(config, workdir: str, sparsity: float, finetune_steps: int):
  new = config.copy_and_resolve_references()
  new.prune = dict(sparsity=float(sparsity), init_from=os.path.abspath(workdir))
  if finetune_steps:
    spd = min(new.train.steps_per_dispatch, finetune_steps)
    while finetune_steps % spd:
      spd -= 1
    new.train.update(steps=finetune_steps, steps_per_dispatch=spd, log_every=spd, ckpt_every=0,
                     sample_every=0, eval_every=0, patience=0, num_replicas=1)
  return new


def prune_workdir(workdir: str, out: str, sparsity: float, finetune_steps: int = 0) -> dict:
  """Writes a pruned workdir (after `finetune_steps` of recovery training, if any)."""
  if not 0.0 < sparsity < 1.0:
    raise ConfigError(f"--sparsity must be in (0, 1), got {sparsity}")
  if finetune_steps < 0:
    raise ConfigError(f"--finetune_steps must be >= 0, got {finetune_steps}")
  config = _source_config(workdir)
  if quant_bits(config):
    raise ConfigError(f"{workdir!r} is quantised: prune its source {config.deploy.source!r} "
                      "(then quantise the pruned run)")
  _model_task(workdir, config, "prune")
  _fresh_out(out, "prune")
  new = prune_config(config, workdir, sparsity, finetune_steps)
  task = build_task(new)
  if finetune_steps:
    train(new, out)
  else:
    _, source = open_run(workdir)
    state = jax.jit(task.init_state, static_argnums=0)(new.seed)
    state = jax.jit(task.from_pretrained)(state, source)
    runs.write_run(out, new, 0, state)
  _, state = open_run(out)
  measured = compress.sparsity_of(state[task.weight_keys()[0]])
  print(f"wrote {out}: {measured:.1%} of the kernel weights are zero"
        + (f" after {finetune_steps} recovery steps" if finetune_steps else ""))
  return {"sparsity": measured, "finetune_steps": finetune_steps}
