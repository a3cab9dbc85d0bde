"""Offline data packages from the npm registry (the emoji artwork of
emoji-datasource-google/-twitter, the chinese-poetry collection): `npm pack` into a data dir's
cache, keeping only the members a dataset reads. Used by the image and poetry datasets."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tarfile

from artjax import ConfigError


def npm_pack(package: str, cache: str, keep, missing_hint: str, size: str = "") -> None:
  """`npm pack PACKAGE` into `cache`, keeping only the members `keep(name)` accepts."""
  npm = shutil.which("npm")
  if npm is None:
    raise ConfigError(missing_hint)
  os.makedirs(cache, exist_ok=True)
  print(f"fetching the {package} npm package{f' ({size})' if size else ''} into {cache} ...",
        flush=True)
  try:
    subprocess.run([npm, "pack", package, "--pack-destination", cache], check=True,
                   capture_output=True, timeout=900)
  except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
    detail = getattr(e, "stderr", b"") or b""
    raise ConfigError(f"`npm pack {package}` failed "
                      f"({detail.decode(errors='replace').strip()[-200:]})") from e
  name = package.split("/")[-1].split("@")[0]   # scope and version stripped
  tgz = sorted(glob.glob(os.path.join(cache, f"{name}-*.tgz")))[-1]
  with tarfile.open(tgz) as t:
    t.extractall(cache, members=[m for m in t.getmembers() if keep(m.name)], filter="data")
  os.remove(tgz)
