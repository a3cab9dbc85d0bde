"""`midi:PATH`: a user's folder (recursive) or `.zip` of MIDI files (and MusicXML / ABC
through music21) as a token dataset for the Music Transformer.

Each file becomes one token sequence of the field's tokenizers (miditok: REMI, TSD or
MIDILike; symusic parses the MIDI): every track and instrument in one stream (program
tokens, the drums as `PitchDrum`), with tempo, time signature and velocity. Prepared once
per fingerprint (the files' names, sizes and times, the tokenizer and its settings) into
`DATA_DIR/midi/FINGERPRINT.npz` (written whole, then renamed), with a progress bar.

Split (fixed, by file): sha256 of the relative path, one in ten to test and one in ten to
validation, at least one file each once there are 3 files.

Bad input: files that cannot be read or hold no notes are skipped with one warning line (their
count and first names), or refused under `data.strict`, as is one tune of a book (ABC) over
MAX_PIECE_TOKENS; a missing path, an empty folder, a folder with no readable notes, a file over
MAX_FILE_BYTES or a one-piece file over MAX_PIECE_TOKENS, and
a zip whose names climb out (`..`, absolute) are one `error:` line before anything is written.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import tempfile
import zipfile

import numpy as np

from artjax import ConfigError

PREFIX = "midi:"
CORPUS_PREFIX = "music21:"
#: music21's corpus as datasets: name -> its folders (`music21:folk` merges four collections;
#: the same tune in two of them is kept once, see `dedup`)
CORPORA = {"bach": ("bach",), "palestrina": ("palestrina",), "monteverdi": ("monteverdi",),
           "trecento": ("trecento",),
           "folk": ("ryansMammoth", "oneills1850", "essenFolksong", "nottingham-dataset")}
MIDI_EXT = (".mid", ".midi")
SCORE_EXT = (".xml", ".musicxml", ".mxl", ".abc", ".krn")
MAX_FILE_BYTES = 16 << 20
MAX_PIECE_TOKENS = 200_000
TOKENIZERS = ("REMI", "TSD", "MIDILike")
VERSION = 4     # tunes deduplicated, collections split into pieces, repeats as written


def is_midi(name: str) -> bool:
  return str(name).startswith((PREFIX, CORPUS_PREFIX))


def corpus_dir() -> str:
  import music21
  return os.path.dirname(music21.corpus.__file__)


def path_of(name: str) -> str:
  """The folder (or zip) the files of `name` are under."""
  return corpus_dir() if name.startswith(CORPUS_PREFIX) else name[len(PREFIX):]


def subdirs_of(name: str) -> tuple:
  """music21:NAME -> its corpus folders; () for midi:PATH (everything under the path)."""
  return CORPORA[name[len(CORPUS_PREFIX):]] if name.startswith(CORPUS_PREFIX) else ()


def check(name: str, tokenizer: str) -> None:
  """Config-time checks (nothing read but the zip's directory)."""
  if tokenizer not in TOKENIZERS:
    raise ConfigError(f"data.tokenizer={tokenizer!r}: choose one of {TOKENIZERS}")
  if name.startswith(CORPUS_PREFIX):
    if name[len(CORPUS_PREFIX):] not in CORPORA:
      raise ConfigError(f"data.name {name!r}: music21 corpora are {', '.join(CORPUS_PREFIX + k for k in CORPORA)}")
    return
  path = path_of(name)
  if not path:
    raise ConfigError("data.name 'midi:' needs a path: midi:FOLDER or midi:FILES.zip")
  if not os.path.exists(path):
    raise ConfigError(f"data.name {name!r}: {path} does not exist")
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
      bad = [n for n in z.namelist() if n.startswith("/") or ".." in n.split("/")]
    if bad:
      raise ConfigError(f"midi:{path}: the zip names a path outside itself ({bad[0]!r}); refused")
  elif not os.path.isdir(path):
    raise ConfigError(f"midi:{path} is neither a folder nor a .zip of MIDI files")


def tokenizer(kind: str):
  """The miditok tokenizer of `kind` with the settings every midi: dataset uses."""
  import miditok
  cfg = miditok.TokenizerConfig(use_programs=True, one_token_stream_for_programs=True,
                                use_tempos=True, use_time_signatures=True, use_velocities=True,
                                special_tokens=["PAD", "BOS", "EOS"])
  return getattr(miditok, kind)(cfg)


def listing(path: str, subdirs: tuple = ()) -> list[tuple[str, int, object]]:
  """[(relative name, size, time)] of the music files under `path` (a folder or a zip), or
  under its `subdirs` only."""
  ext = MIDI_EXT + SCORE_EXT
  if subdirs:
    out = []
    for d in subdirs:
      out += [(os.path.join(d, rel), size, t) for rel, size, t in listing(os.path.join(path, d))]
    return sorted(out)
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
      return sorted((i.filename, i.file_size, i.date_time) for i in z.infolist()
                    if not i.is_dir() and i.filename.lower().endswith(ext))
  out = []
  for d, _, names in os.walk(path):
    for n in names:
      if n.lower().endswith(ext):
        p = os.path.join(d, n)
        st = os.lstat(p)
        out.append((os.path.relpath(p, path), st.st_size, st.st_mtime_ns))
  return sorted(out)


def read_bytes(path: str, rel: str) -> bytes:
  """One file's bytes: regular files only (a FIFO or device is refused, never read), at
  most MAX_FILE_BYTES (a zip entry is decompressed no further)."""
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
      info = z.getinfo(rel)
      if info.file_size > MAX_FILE_BYTES:
        raise ConfigError(f"midi:{path}: {rel} is {info.file_size:,} bytes (at most {MAX_FILE_BYTES:,})")
      with z.open(info) as f:
        data = f.read(MAX_FILE_BYTES + 1)
  else:
    from artjax.engine import data as data_lib
    data = data_lib.read_regular(os.path.join(path, rel), MAX_FILE_BYTES)
  if len(data) > MAX_FILE_BYTES:
    raise ConfigError(f"midi:{path}: {rel} is over {MAX_FILE_BYTES:,} bytes")
  return data


def score_of(data: bytes, rel: str):
  """A symusic Score of a file's bytes (the first piece of a collection)."""
  return scores_of(data, rel)[0]


def scores_of(data: bytes, rel: str) -> list:
  """symusic Scores of a MIDI file's bytes, or of a MusicXML / ABC / Humdrum file read by
  music21 (written to MIDI first): one per piece (an ABC book of tunes is many; None for a
  tune of a book that cannot be written)."""
  import symusic
  if rel.lower().endswith(MIDI_EXT):
    return [symusic.Score.from_midi(data)]
  from music21 import converter, stream
  ext = os.path.splitext(rel)[1].lower()
  with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "in" + ext)
    with open(src, "wb") as f:
      f.write(data)
    parsed = converter.parse(src)
    pieces = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    out = []
    for i, p in enumerate(pieces):
      mid = os.path.join(d, f"{i}.mid")
      try:
        as_written(p).write("midi", fp=mid)
        out.append(symusic.Score(mid))
      except Exception:       # one tune of a book music21 cannot write: None, the rest kept
        if len(pieces) == 1:
          raise
        out.append(None)
    return out


def as_written(score):
  """`score` with its repeat signs made plain barlines, so that music21's MIDI writing plays
  it once as written: its expansion of ABC repeats multiplies some tunes (O'Neill's "Morgan
  Rattler", 507 written notes, became 50,580). A time signature shared by several bars is
  copied into each (music21 cannot write it otherwise: 70 of the 313 tunes of Essen's
  altdeu10.abc)."""
  from music21 import bar, repeat, stream
  seen = set()
  for measure in score.recurse().getElementsByClass(stream.Measure):
    sign = measure.timeSignature     # one object in several bars (an ABC tune of mixed metre)
    if sign is not None and id(sign) in seen:   # breaks music21's MIDI conductor track
      measure.timeSignature = copy.deepcopy(sign)
    seen.add(id(measure.timeSignature))
  for sign in list(score.recurse().getElementsByClass(bar.Repeat)):
    measure = sign.activeSite
    if measure.leftBarline is sign:
      measure.leftBarline = None
    else:
      measure.rightBarline = bar.Barline("double")
  for mark in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
    mark.activeSite.remove(mark)
  return score


def split_of(index: int, n: int) -> str:
  """The split of the piece at `index` (in hash order) among `n`."""
  held = max(1, n // 10) if n >= 3 else 0
  return "test" if index < held else "validation" if index < 2 * held else "train"


def fingerprint(path: str, kind: str, found) -> str:
  h = hashlib.sha256(repr((VERSION, os.path.abspath(path), kind, found)).encode())
  return h.hexdigest()[:16]


_TOKENIZERS: dict = {}
#: files from which a preparation reads in worker processes (spawned: JAX's threads are not
#: forked), one per core up to MAX_WORKERS
POOL_FROM, MAX_WORKERS = 32, 8


def read_one(path: str, rel: str, kind: str):
  """(rel, None: unreadable | [] : no notes | [(tune key, token ids)] per piece) of one file;
  a ConfigError for a file over the limits."""
  if kind not in _TOKENIZERS:
    _TOKENIZERS[kind] = tokenizer(kind)
  try:
    scores = [s for s in scores_of(read_bytes(path, rel), rel) if s is None or s.note_num()]
  except ConfigError:
    raise
  except Exception:           # corrupt, truncated, not music at all, not a regular file
    return rel, None
  out = []
  for score in scores:
    ids = None if score is None else np.asarray(_TOKENIZERS[kind](score).ids, np.int32)
    if ids is not None and ids.size <= MAX_PIECE_TOKENS:
      out.append((tune_key(score), ids))
    elif len(scores) > 1 or ids is None:   # a bad tune of a book: skipped like a bad file
      out.append((None, None))
    else:
      raise ConfigError(f"midi:{path}: {rel} is {ids.size:,} tokens long (at most "
                        f"{MAX_PIECE_TOKENS:,}): an absurd length for one piece")
  return rel, out


def _read_all(path: str, found, kind: str, progress):
  """read_one of every file, in order: in this process, or in a pool of spawned workers."""
  import concurrent.futures
  import functools
  import multiprocessing
  rels = [rel for rel, _, _ in found]
  fn = functools.partial(read_one, path, kind=kind)
  workers = min(os.cpu_count() or 1, MAX_WORKERS)
  if len(rels) < POOL_FROM or workers < 2:
    yield from progress(map(fn, rels), len(rels))
    return
  with concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context("spawn")) as pool:
    yield from progress(pool.map(fn, rels, chunksize=2), len(rels))


def _tokenise_all(path: str, found, kind: str, strict: bool, progress):
  """[(rel, ids)] of the readable pieces with notes, each tune once; the files skipped; the
  tunes of books skipped (`rel#i`); the number of repeated tunes dropped."""
  pieces, skipped, bad_tunes, seen, dups = [], [], [], set(), 0
  for rel, read in _read_all(path, found, kind, progress):
    if not read:
      if strict:
        raise ConfigError(f"midi:{path}: {rel} is {'unreadable' if read is None else 'without notes'} "
                          "(data.strict=True refuses it)")
      skipped.append(rel)
      continue
    for i, (key, ids) in enumerate(read):
      if ids is None:
        if strict:
          raise ConfigError(f"midi:{path}: {rel}#{i} is unreadable or over {MAX_PIECE_TOKENS:,} "
                            "tokens (data.strict=True refuses it)")
        bad_tunes.append(f"{rel}#{i}")
        continue
      if key in seen:           # the same tune again (in this collection or another)
        dups += 1
        continue
      seen.add(key)
      pieces.append((rel if len(read) == 1 else f"{rel}#{i}", ids))
  return pieces, skipped, bad_tunes, dups


def tune_key(score, n: int = 32) -> bytes:
  """The same tune, whatever its key, tempo, instrument or file: the melodic intervals and the
  onset gaps (in quarter notes, rounded to a 16th) of the first `n` notes of the track with
  the most notes. Two files of one tune in different collections, or transposed, share it."""
  track = max(score.tracks, key=lambda t: len(t.notes))
  notes = sorted(((x.time, -x.pitch) for x in track.notes))[:n + 1]
  tpq = max(int(score.ticks_per_quarter), 1)
  steps = [(b[1] - a[1], round(4 * (b[0] - a[0]) / tpq)) for a, b in zip(notes, notes[1:])]
  return hashlib.sha256(repr(steps).encode()).digest()


def prepare(name: str, kind: str, data_dir: str, strict: bool = False) -> dict:
  """{"tokens": int32 [T], "offsets": int64 [N + 1], "split": [N] str, "names": [N] str} of
  `midi:PATH`, prepared once per fingerprint (see the module docstring)."""
  from tqdm import tqdm
  from artjax.engine import progress
  path = path_of(name)
  found = listing(path, subdirs_of(name))
  if not found:
    raise ConfigError(f"midi:{path}: no .mid/.midi (or MusicXML/ABC) files")
  out = os.path.join(data_dir, "midi", fingerprint(path, kind, found) + ".npz")
  if os.path.exists(out):
    with np.load(out) as z:
      return {k: z[k] for k in z.files}
  pieces, skipped, bad_tunes, dups = _tokenise_all(
      path, found, kind, strict, lambda xs, n: tqdm(xs, total=n, desc=f"tokenising {path}",
                                                    unit="file", leave=progress.leave(), mininterval=1.0))
  if skipped or bad_tunes:
    tunes = f" and {len(bad_tunes)} tunes of a book unreadable or over {MAX_PIECE_TOKENS:,} tokens"
    names = skipped + bad_tunes
    print(f"warning: skipped {len(skipped)} of {len(found)} files that are unreadable or have no "
          f"notes{tunes if bad_tunes else ''} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})",
          file=sys.stderr)
  if dups:
    print(f"note: {dups} pieces repeat a tune already read (the same intervals and rhythm of "
          "the first 32 notes): kept once", file=sys.stderr)
  if not pieces:
    raise ConfigError(f"midi:{path}: none of its {len(found)} files has readable notes")
  pieces.sort(key=lambda p: hashlib.sha256(p[0].encode("utf-8", "surrogateescape")).hexdigest())
  ds = {"tokens": np.concatenate([ids for _, ids in pieces]),
        "offsets": np.cumsum([0] + [len(ids) for _, ids in pieces]).astype(np.int64),
        "split": np.asarray([split_of(i, len(pieces)) for i in range(len(pieces))]),
        "names": np.asarray([r.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                             for r, _ in pieces])}
  os.makedirs(os.path.dirname(out), exist_ok=True)
  tmp = out + f".tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    np.savez(f, **ds)
  os.replace(tmp, out)
  return ds


def pieces_of(ds: dict, split: str) -> list[np.ndarray]:
  """The token sequences of one split."""
  o = ds["offsets"]
  return [ds["tokens"][o[i]:o[i + 1]] for i in np.flatnonzero(ds["split"] == split)]
