"""Data parallelism on 8 (forced host) devices, in a subprocess so the rest of the suite
keeps one device."""


import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _on_eight_devices(script, tmp_path, data_dir, timeout, *args):
  """Runs tests/SCRIPT TMP_PATH ARGS with 8 forced CPU devices; its last stdout line as JSON."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             ARTJAX_DATA_DIR=data_dir)
  r = subprocess.run([sys.executable, os.path.join(HERE, script), str(tmp_path), *args],
                     capture_output=True, text=True, env=env, timeout=timeout)
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(r.stdout.strip().splitlines()[-1])
