"""Writing frames as a video, streamed (memory flat in the video's length): MP4 (H.264,
yuv420p, through the ffmpeg that the imageio-ffmpeg wheel carries) or GIF (Pillow; a GIF
holds its frames until written, so its length is capped by the caller). Frames are uint8
[H, W, 3] of one size; both sides must be even for yuv420p (callers pad)."""

from __future__ import annotations

import os

import numpy as np

FORMATS = (".mp4", ".gif")


class VideoWriter:
  """with VideoWriter(path, fps, (h, w)) as v: v.write(frames [N, H, W, 3] uint8)...; the
  file appears under its name only when closed without error (written to a temporary name,
  renamed at the end)."""

  def __init__(self, path: str, fps: int, size: tuple[int, int], audio: str | None = None):
    self.path, self.fps, self.size, self.audio = path, int(fps), tuple(size), audio
    self.ext = os.path.splitext(path)[1].lower()
    self.tmp = f"{path}.partial{self.ext}"
    self.count = 0
    self._gif, self._gen = [], None

  def __enter__(self):
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    if self.ext == ".mp4":
      import imageio_ffmpeg
      h, w = self.size
      extra = {}
      if self.audio:
        extra = {"audio_path": self.audio, "audio_codec": "aac"}
      self._gen = imageio_ffmpeg.write_frames(
          self.tmp, (w, h), fps=self.fps, codec="libx264", pix_fmt_in="rgb24",
          pix_fmt_out="yuv420p", macro_block_size=2, quality=7,
          output_params=["-movflags", "+faststart"], ffmpeg_log_level="error", **extra)
      self._gen.send(None)
    return self

  def write(self, frames) -> None:
    frames = np.asarray(frames, np.uint8)
    assert frames.shape[1:3] == self.size and frames.shape[-1] == 3, frames.shape
    for f in frames:
      if self._gen is not None:
        self._gen.send(np.ascontiguousarray(f))
      else:
        self._gif.append(f)
    self.count += len(frames)

  def __exit__(self, exc_type, exc, tb):
    try:
      if self._gen is not None:
        self._gen.close()
      elif exc_type is None:
        from PIL import Image
        ims = [Image.fromarray(f) for f in self._gif]
        ims[0].save(self.tmp, save_all=True, append_images=ims[1:], loop=0,
                    duration=round(1000 / self.fps), optimize=False, disposal=1)
    finally:
      if exc_type is None and os.path.exists(self.tmp):
        os.replace(self.tmp, self.path)
      elif os.path.exists(self.tmp):
        os.remove(self.tmp)
    return False


def read_frames(path: str) -> tuple[np.ndarray, dict]:
  """(uint8 frames [N, H, W, 3], ffmpeg's metadata) of a video file (tests, stylize)."""
  import imageio_ffmpeg
  gen = imageio_ffmpeg.read_frames(path)
  meta = gen.__next__()
  w, h = meta["size"]
  frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
  return np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8), meta
