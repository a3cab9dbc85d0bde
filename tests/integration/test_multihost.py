"""Two real JAX processes on this machine (CPU collectives over gloo, coordinator on
127.0.0.1), 4 CPU devices each, against one process with 8 devices."""


import os
import socket
import subprocess
import sys


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class _Proc:
  """A child process whose output goes to files (pipes could fill and stall a peer)."""

  def __init__(self, workdir, port, pid, num, devices, data_dir, logdir, shape=""):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               ARTJAX_DATA_DIR=data_dir, JAX_PLATFORMS="cpu")
    self.out_path = os.path.join(logdir, f"p{pid}_{num}{shape}.out")
    self.err_path = os.path.join(logdir, f"p{pid}_{num}{shape}.err")
    self.p = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "multihost_check.py"), workdir, str(port), str(pid),
         str(num), shape], env=env, stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"))

  def wait(self):
    self.p.wait(timeout=600)
    return self.p.returncode, open(self.out_path).read(), open(self.err_path).read()


def _spawn(workdir, port, pid, num, devices, data_dir, logdir, shape=""):
  return _Proc(workdir, port, pid, num, devices, data_dir, logdir, shape)
