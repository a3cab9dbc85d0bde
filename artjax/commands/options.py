"""What every command shares: its own absl FlagValues (each in-process call parses afresh),
`--help` that lists only that command's flags, one-line `error:` exits, and the run.py config
parser (benchmarks and scripts use it too)."""

from __future__ import annotations

import os
import re
import sys

from absl import flags
from ml_collections import config_flags

from artjax import ConfigError


def fail(msg: str) -> None:
  print(f"error: {msg}", file=sys.stderr, flush=True)
  sys.exit(2)


def define_config(fv, argv, default: str | None = None) -> None:
  """`--config=configs/NAME.py[:ARG]` with `--config.x=y` overrides of any field. `default`:
  the config when --config is not given -- appended to `argv` itself (the command's argv,
  parsed after this), so that its `--config.x=y` overrides apply too."""
  if default and not any(a.startswith("--config=") for a in argv):
    argv.insert(1, f"--config={default}")
  config_flags.DEFINE_config_file("config", None, "Config file: configs/NAME.py[:ARG]; "
                                  "--config.FIELD=VALUE overrides any field."
                                  + (f" Default: {default}." if default else ""), flag_values=fv,
                                  lock_config=True, sys_argv=list(argv))


def load_config(spec: str, overrides=()):
  """The config of `configs/NAME.py[:ARG]` with run.py's `--config.x=y` overrides applied
  (a bad one is one `error:` line)."""
  argv = ["artjax", f"--config={spec}", *overrides]
  fv = flags.FlagValues()
  define_config(fv, argv)
  parse(fv, argv)
  return fv.config


def _innermost(e: BaseException) -> BaseException:
  while e.__cause__ is not None or e.__context__ is not None:
    e = e.__cause__ or e.__context__
  return e


def _config_spec_problem(argv) -> str | None:
  for a in argv:
    if a.startswith("--config="):
      path = a.split("=", 1)[1].split(":", 1)[0]
      if not os.path.isfile(path):
        return f"config file {path!r} does not exist (run from the repository root, e.g. --config=configs/gan.py)"
  return None


def _unknown_key(e, argv) -> str:
  text = str(e.args[0]) if e.args else str(e)
  text = text.encode().decode("unicode_escape").replace("\\'", "'")
  names = re.findall(r"'([A-Za-z_]\w*)'", text)
  key = names[0] if names else text.strip("'\" ")
  culprits = [a.split("=")[0][len("--config."):] for a in argv
              if a.startswith("--config.") and a.split("=")[0].split(".")[-1] == key]
  hint = re.search(r'Did you mean "(\w+)"', text)
  return (f"unknown config key {culprits[0] if culprits else key!r} (no such field in the config "
          f"file{'; did you mean ' + repr(hint.group(1)) + '?' if hint else ''})")


def parse(fv, argv):
  """absl flag parsing with one-line errors (unknown flag or config key, wrong type, ...);
  returns the positional arguments."""
  problem = _config_spec_problem(argv)
  if problem:
    fail(problem)
  try:
    return fv(argv)
  except flags.Error as e:
    inner = _innermost(e)
    head = str(e).splitlines()[0].rstrip(":")
    detail = " ".join(str(inner).split())
    fail(head if inner is e or detail in head else f"{head}: {detail}")
  except (KeyError, AttributeError) as e:
    fail(_unknown_key(e, argv))
  except (TypeError, ValueError) as e:
    fail(f"bad config: {' '.join(str(e).split())}")


def need(FLAGS, *names, command):
  missing = [n for n in names if not FLAGS[n].value]
  if missing:
    raise ConfigError(f"{command} needs " + " and ".join(f"--{n}" for n in missing))


def help_text(summary: str, usage: str, fv) -> str:
  """`run.py NAME --help`: the command's usage and its own flags (help text and default)."""
  lines = [f"usage: python run.py {usage}", "", summary, "", "flags:"]
  seen = {}
  for n in fv:
    seen.setdefault(fv[n].name, fv[n])
  for name in sorted(seen):
    f = seen[name]
    default = "none" if f.default is None else (f.default_as_str or "''")
    if len(default) > 2 and default[0] == default[-1] == "'":
      default = default[1:-1]
    lines.append(f"  --{name}: {' '.join(str(f.help).split())} (default: {default})")
  return "\n".join(lines)


def repeated(argv, name: str) -> list[str]:
  """Every value of a repeated string flag (absl keeps only the last one)."""
  out, it = [], iter(argv)
  for a in it:
    if a.startswith(f"--{name}="):
      out.append(a.split("=", 1)[1])
    elif a == f"--{name}":
      out.append(next(it, ""))
  return out


def check_outputs(outputs: dict, inputs: dict) -> None:
  """One rule for every command's output files (`{flag: path}`), before any work: an output
  is not a directory and never one of the inputs (`{flag: path}`, the same file by any name),
  so no command can overwrite what it reads."""
  def same(a, b):
    if os.path.exists(a) and os.path.exists(b):
      return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)
  for oflag, out in outputs.items():
    if not out:
      continue
    if os.path.isdir(out):
      raise ConfigError(f"{oflag}={out} is a directory: name a file")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
      parent = os.path.dirname(parent)
    try:
      import tempfile
      with tempfile.TemporaryFile(dir=parent):
        pass
    except OSError as e:
      raise ConfigError(f"{oflag}={out}: {parent} is not writable ({e.strerror or e}; "
                        "checked before any work)") from e
    for iflag, paths in inputs.items():
      for p in ([paths] if isinstance(paths, str) else (paths or ())):
        if p and same(out, p):
          raise ConfigError(f"{oflag}={out} is the {iflag} file: choose another name "
                            "(inputs are never overwritten)")
