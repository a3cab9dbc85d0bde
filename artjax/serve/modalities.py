"""What the service serves, by modality, and which route each modality answers.

A modality is a module (artjax.serve.images, .music, .poems, .tools) holding both halves of
serving one kind of model: the model side (a `Model` subclass: its calls and warm-up, and
`make`, which builds it from an export) and the HTTP side (`Endpoint`s: parse, run, encode).
`app.py` only routes: it reads the body, picks the served model, and hands the request to the
endpoint of that model's kind. A new modality is a module and a line in each table here.
"""

from __future__ import annotations

import dataclasses

from artjax.serve import images, music, poems, tools

#: an export's sampler kind (the task's `sample_kind`) -> the module that serves it
BY_SAMPLE_KIND = {"images": images, "tokens": music, "poems": poems}


@dataclasses.dataclass(frozen=True)
class Route:
  """A POST route: its endpoints (one per served kind), how its body comes (JSON, or a
  multipart upload with these files), and what the 404 says of it."""
  path: str
  endpoints: tuple
  what: str = "model"
  elsewhere: str = ""
  files: tuple = ()           # multipart: the file parts; () = a JSON body
  counts_arrivals: bool = False   # requests being read hold the batchers back (merging rows)

  def endpoint(self, info):
    """The endpoint answering for served model `info`, or None."""
    return next((e for e in self.endpoints if e.kind == info.kind and e.accepts(info)), None)


ROUTES = {
    "generate": Route("/v1/generate", (images.GENERATE, music.GENERATE),
                      elsewhere="poems: use POST /v1/poems", counts_arrivals=True),
    "poems": Route("/v1/poems", (poems.POEMS,),
                   elsewhere="images and music: use POST /v1/generate"),
    "animate": Route("/v1/animate", (images.ANIMATE,),
                     elsewhere="only image GANs exported with a walk animate"),
    "stylize": Route("/v1/stylize", (tools.STYLIZE,), what="stylize model",
                     elsewhere="serve a style run with --workdir", files=("image",)),
    "repair": Route("/v1/repair", (tools.REPAIR,), what="repair model",
                    elsewhere="serve an inpainting run with --workdir", files=("image", "mask")),
}
