"""The command table behind run.py: one module per command, each with only its own flags
(`define(fv, argv)`), a one-line `SUMMARY`, a `USAGE` line and `run(FLAGS, args, argv)`.
`main(argv)` dispatches from `COMMANDS`; it is also the in-process entry (tests call it).

    python run.py --help            the commands, one line each
    python run.py CMD --help        that command's flags, with their help text and defaults
"""

from __future__ import annotations

import importlib
import sys

from absl import flags, logging as absl_logging

from artjax import ConfigError
from artjax.commands import options as flags_lib

#: run.py's commands, in the order `run.py --help` lists them: name -> module
_MODULES = {"eval": "evaluate", "import": "import_run"}   # names Python reserves or we reuse
COMMANDS = {name: f"artjax.commands.{_MODULES.get(name, name)}" for name in (
    "train", "finetune", "import", "sample", "eval", "compare", "merge", "stylize", "repair",
    "project", "translate", "animate", "export",
    "quantize", "prune", "serve", "sweep")}
HELP = ("-h", "--help", "-help", "--helpfull")


def _module(name: str):
  return importlib.import_module(COMMANDS[name])


def overview() -> str:
  lines = ["usage: python run.py COMMAND [flags]   (python run.py COMMAND --help: its flags)", "",
           "commands:"]
  for name in COMMANDS:
    lines.append(f"  {name:<9} {_module(name).SUMMARY}")
  return "\n".join(lines)


def _split(argv) -> tuple[str | None, list]:
  """(the command: the first argument that is not a flag, the other arguments)."""
  rest = list(argv[1:])
  for i, a in enumerate(rest):
    if not a.startswith("-"):
      return a, rest[:i] + rest[i + 1:]
  return None, rest


def dispatch(argv) -> int:
  name, rest = _split(argv)
  if name is None and any(a in HELP for a in rest):
    print(overview())
    return 0
  if name not in COMMANDS:
    flags_lib.fail(f"usage: run.py {{{'|'.join(COMMANDS)}}} [flags]; got "
                   f"{[a for a in argv[1:] if not a.startswith('-')]}")
  mod = _module(name)
  fv = flags.FlagValues()
  cmd_argv = [argv[0], *rest]
  mod.define(fv, cmd_argv)
  if any(a in HELP for a in rest):
    print(flags_lib.help_text(mod.SUMMARY, mod.USAGE, fv))
    return 0
  args = flags_lib.parse(fv, cmd_argv)[1:]
  if args and not getattr(mod, "POSITIONAL", False):
    flags_lib.fail(f"usage: run.py {mod.USAGE}; got unexpected arguments {args}")
  absl_logging.set_verbosity(absl_logging.WARNING)
  try:
    code = mod.run(fv, args, cmd_argv)
  except ConfigError as e:
    flags_lib.fail(str(e))
  if code is not None and not isinstance(code, int):  # a command's result leaking out as a status
    raise TypeError(f"run.py {name} returned {type(code).__name__}, not an exit code")
  return code or 0


def main(argv) -> int:
  """Parses `argv` (argv[0] = program) and runs the command; returns the exit code."""
  try:
    return dispatch(argv)
  except SystemExit as e:
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
