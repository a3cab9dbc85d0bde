"""One process of a 2-process run (spawned by test_multihost.py), or the 1-process peer.

  python multihost_check.py WORKDIR PORT PROCESS_ID NUM_PROCESSES [MESH_SHAPE]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(workdir, port, pid, num, shape=""):
  from helpers import small_config
  from artjax.tasks.training import train
  c = small_config(steps=40, batch_size=64, ckpt_every=20, sample_every=20, eval_every=0)
  c.mesh.num_devices = 0
  c.mesh.shape = shape   # e.g. fsdp=-1: weights and optimizer state split across processes
  if num > 1:
    c.distributed.update(coordinator=f"127.0.0.1:{port}", num_processes=num, process_id=pid)
  s = train(c, workdir, quiet=True)
  import jax
  print(f"process {jax.process_index()}/{jax.process_count()} devices {jax.device_count()} "
        f"local {jax.local_device_count()} step {s['step']}", flush=True)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
       sys.argv[5] if len(sys.argv) > 5 else "")
