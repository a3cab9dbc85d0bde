"""A folder (searched recursively) or a .zip of PNG/JPEG/WebP/BMP/GIF pictures as a TFDS
builder, in the habit of StyleGAN's dataset_tool: each picture (a GIF's first frame) is
centre-cropped (`fit="crop"`) or padded with white (`fit="pad"`) to a square, resized to
`resolution` with antialiasing (Lanczos), RGB. Labels, optionally, from the first-level
subfolder names (sorted; files at the top level get no label and are refused then).

`scan(source, ...)` lists and checks everything before anything is written: unreadable or
truncated files are skipped (or, strict, refused), pictures above `max_pixels` refused
(decompression bombs). The builder config's name is a fingerprint of the file names, sizes
and modification times and of the preparation settings: a changed folder is prepared
again, an unchanged one is not.

Splits by the file's path inside the folder (`split_by="path"`): `test` when
sha256(path) % 10 == 0, `validation` when it is 1, else `train`. `split_by="name"` hashes
the path below the first-level subfolder instead, so `A/cat.png` and `B/cat.png` (the same
subject in two styles: a paired folder) always share a split. Each record keeps its
relative path (`key`, code points) so that pairs can be found again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from artjax.engine.data import text_codes

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
FITS = ("crop", "pad")


@dataclasses.dataclass(frozen=True)
class Scan:
  """What a folder holds: the readable pictures (relative paths), the unreadable ones, the
  class names (labels) and the fingerprint of it all."""
  source: str
  files: tuple
  bad: tuple
  classes: tuple
  fingerprint: str


SPLIT_BY = ("path", "name")
KEY_LEN = 256


def name_of(rel: str) -> str:
  """A relative path below its first-level subfolder (`A/x/cat.png` -> `x/cat.png`)."""
  return rel.split("/", 1)[1] if "/" in rel else rel


def printable(rel: str) -> str:
  """A relative path as valid Unicode: a name that is not UTF-8 (decoded by os.walk with
  surrogates) keeps its undecodable bytes as \\xNN escapes."""
  return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def split_of(path: str, split_by: str = "path") -> str:
  key = name_of(path) if split_by == "name" else path
  # surrogateescape: a file name that is not UTF-8 (os.walk decodes it with surrogates)
  b = int(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest(), 16) % 10
  return "test" if b == 0 else "validation" if b == 1 else "train"


def listing(source: str) -> list:
  """[(relative path, size, mtime)] of the pictures under `source`."""
  if zipfile.is_zipfile(source):
    with zipfile.ZipFile(source) as z:
      return sorted((i.filename, i.file_size, i.date_time) for i in z.infolist()
                    if not i.is_dir() and i.filename.lower().endswith(EXTENSIONS))
  out = []
  for d, _, names in os.walk(source):
    for n in names:
      if n.lower().endswith(EXTENSIONS):
        p = os.path.join(d, n)
        st = os.stat(p)
        out.append((os.path.relpath(p, source), st.st_size, st.st_mtime_ns))
  return sorted(out)


class TooLarge(ValueError):
  pass


def max_file_bytes(max_pixels: int) -> int:
  """The most bytes a picture file of `max_pixels` may hold: an uncompressed RGBA bitmap at
  the pixel limit plus 16 MiB of headers and metadata."""
  return 4 * int(max_pixels) + (16 << 20)


def open_bytes(source: str, rel: str, max_bytes: int | None = None) -> bytes:
  """The bytes of one picture. Only regular files are read (a FIFO, a device or a link to
  one is a ValueError, never opened for a blocking read); a zip entry is decompressed at most
  to `max_bytes` (TooLarge past it, whatever its header claims)."""
  if zipfile.is_zipfile(source):
    with zipfile.ZipFile(source) as z:
      info = z.getinfo(rel)
      if max_bytes is not None and info.file_size > max_bytes:
        raise TooLarge(f"{rel} decompresses to {info.file_size:,} bytes")
      with z.open(info) as f:
        data = f.read(-1 if max_bytes is None else max_bytes + 1)
      if max_bytes is not None and len(data) > max_bytes:
        raise TooLarge(f"{rel} decompresses to more than {max_bytes:,} bytes")
      return data
  fd = os.open(os.path.join(source, rel), os.O_RDONLY | os.O_NONBLOCK)
  with os.fdopen(fd, "rb") as f:
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
      raise ValueError(f"{rel} is not a regular file")
    return f.read()


def check_picture(data: bytes, max_pixels: int) -> None:
  """Raises for a file PIL cannot read completely, or one of more than `max_pixels`."""
  from PIL import Image
  with Image.open(io.BytesIO(data)) as im:
    if im.size[0] * im.size[1] > max_pixels:
      raise TooLarge(f"a picture of {im.size[0]}x{im.size[1]} pixels")
    im.load()


def scan(source: str, settings: str, max_pixels: int, labels: bool, progress=None) -> Scan:
  """Lists and opens every picture of `source` (see the module docstring)."""
  found = listing(source)
  good, bad = [], []
  for rel, _, _ in (progress(found) if progress else found):
    try:
      check_picture(open_bytes(source, rel, max_file_bytes(max_pixels)), max_pixels)
      good.append(rel)
    except TooLarge:
      raise
    except Exception:   # truncated, corrupt, not a picture at all
      bad.append(rel)
  classes = tuple(sorted({r.split("/", 1)[0] for r in good if "/" in r})) if labels else ()
  h = hashlib.sha256(repr((found, settings)).encode())
  return Scan(source, tuple(good), tuple(bad), classes, h.hexdigest()[:16])


def to_square(im, resolution: int, fit: str) -> np.ndarray:
  """A PIL image -> RGB uint8 [resolution, resolution, 3] (centre crop or white padding)."""
  from PIL import Image
  im = im.convert("RGBA")
  bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
  im = Image.alpha_composite(bg, im).convert("RGB")
  w, h = im.size
  if fit == "crop":
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
  else:
    s = max(w, h)
    canvas = Image.new("RGB", (s, s), (255, 255, 255))
    canvas.paste(im, ((s - w) // 2, (s - h) // 2))
    im = canvas
  return np.asarray(im.resize((resolution, resolution), Image.LANCZOS), np.uint8)


class Builder(tfds.core.GeneratorBasedBuilder):
  """A scanned folder at one resolution and fit (see the module docstring)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Folder or zip, square crop/pad, Lanczos resize, sha256 split.",
                   "1.1.0": "The relative path as `key`; split by path or by name."}

  def __init__(self, *, folder: Scan, resolution: int, fit: str, split_by: str = "path",
               **kwargs):
    self.folder, self.resolution, self.fit, self.split_by = folder, resolution, fit, split_by
    config = tfds.core.BuilderConfig(
        name=f"r{resolution}_{fit}_{split_by}_{folder.fingerprint}", version=self.VERSION)
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    r = self.resolution
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(r, r, 3), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(), dtype=np.int32),
            "key": tfds.features.Tensor(shape=(KEY_LEN,), dtype=np.int32),
        }),
        metadata=tfds.core.MetadataDict(source=os.path.abspath(self.folder.source),
                                        classes=list(self.folder.classes),
                                        skipped=list(self.folder.bad)),
    )

  def _split_generators(self, dl_manager):
    parts = {"train": [], "validation": [], "test": []}
    for rel in self.folder.files:
      parts[split_of(rel, self.split_by)].append(rel)
    return {k: self._generate_examples(v) for k, v in parts.items() if v}   # TFDS: no empty splits

  def _generate_examples(self, files):
    from PIL import Image
    classes = self.folder.classes
    for rel in files:
      with Image.open(io.BytesIO(open_bytes(self.folder.source, rel))) as im:
        im.seek(0)
        image = to_square(im, self.resolution, self.fit)
      label = classes.index(rel.split("/", 1)[0]) if classes else 0
      key = printable(rel)
      yield key, {"image": image, "label": np.int32(label), "key": text_codes(key, KEY_LEN)}
