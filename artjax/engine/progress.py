"""Progress bars that never leave a message mid-line.

A bar with `leave=False` is cleared with a carriage return when it closes: on a terminal the
next message starts at the left edge, but in a log file or a pipe it lands on the bar's line
("checking DIR: 0file [00:00] ...   error: ..."), where a script looking for lines that start
with `error:` misses it. `leave()` keeps the bar's final line (ending in a newline) unless
stderr is a terminal.
"""

import sys


def leave() -> bool:
  """The `leave=` of a transient tqdm bar on stderr: False on a terminal, True elsewhere."""
  try:
    return not sys.stderr.isatty()
  except (AttributeError, ValueError):   # a closed or unusual stream
    return True
