"""The stages and translators of medtrans, declared once.

Everything that lists them reads this file: the local runner (stage order), the translate config
(`MODELS`), the translator registry's check, the Makefile, docker/scripts/*.sh, the tests, and
compose.yaml and docker/stage/Dockerfile's targets, which `make generate` writes from it. Adding
a translator is one `TRANSLATORS` entry here (plus its module and its config class); README.md,
"Adding a translator", lists the steps.

Standard library only, Python 3.9 and later: host-side scripts run it with whatever python3 the
machine has, before any virtual environment exists (argparse, not typer, for that reason):

    python3 shared/catalogue/stages.py images                # one image per line, in run order
    python3 shared/catalogue/stages.py image cyclegan extra  # one field of one image
    python3 shared/catalogue/stages.py json                  # everything, for other tools
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Stage:
    """One `medtrans <name>` command of the local runner, and its container image(s)."""

    name: str
    extra: str  # the pyproject.toml extra its image installs
    gpu: bool  # its image reserves an NVIDIA GPU in compose's gpu profile
    after: tuple[str, ...]  # the stages whose outputs it reads (compose's depends_on)
    description: str  # the image's description label ("" when each translator has its own)
    per_translator: bool = False  # a unit, an image and a command per translator
    weights: bool = False  # reads pretrained weights (`make images WITH_WEIGHTS=1` bakes them in)


@dataclass(frozen=True)
class Translator:
    """One translator: `medtrans translate <name>`, module medtrans.stages.translate.<name>."""

    name: str
    description: str  # its image's description label


@dataclass(frozen=True)
class Image:
    """One container image (and compose service): a stage, or one translator of a per-translator stage."""

    name: str
    stage: str
    command: tuple[str, ...]  # the medtrans sub-command, e.g. ("translate", "cyclegan")
    extra: str
    gpu: bool
    weights: bool
    per_translator: bool
    after: tuple[str, ...]  # image names this one's inputs come from
    description: str

    @property
    def title(self) -> str:
        return f"medtrans-{self.name}"


# Run order: a stage reads only the outputs of stages before it.
STAGES: tuple[Stage, ...] = (
    Stage(
        "preprocess",
        extra="preprocess",
        gpu=True,  # TotalSegmentator runs on the GPU
        after=(),
        weights=True,
        description="raw scans (DICOM, NIfTI, NRRD) to 8-bit slices, masks and a patient-level split "
        "(TotalSegmentator labels CT vertebrae; its weights come from /weights)",
    ),
    Stage(
        "translate", extra="translate", gpu=True, after=("preprocess",), description="", per_translator=True
    ),
    Stage(
        "calibrate",
        extra="calibrate",
        gpu=False,
        after=("preprocess",),
        description="perturbs the real target test set with known effect on anatomy: calibration sets "
        "with their own masks, scored by segment and metrics like translated sets",
    ),
    Stage(
        "segment",
        extra="segment",
        gpu=True,
        after=("translate", "calibrate"),
        description="trains the target-domain UNet; Dice and HD95 on real and translated test sets",
    ),
    Stage(
        "metrics",
        extra="metrics",
        gpu=True,
        after=("translate", "calibrate"),
        weights=True,
        description="FID, KID, IS, SWD and FRD of each translated set against the real target test set "
        "(Inception weights read from /weights)",
    ),
    Stage(
        "report",
        extra="report",
        gpu=False,
        after=("segment", "metrics"),
        description="correlates the perceptual metrics with Dice: tables, figures, report.html",
    ),
)

TRANSLATORS: tuple[Translator, ...] = (
    Translator("cyclegan", "trains the CycleGAN translator per task and translates the source test split"),
    Translator(
        "maskgan",
        "trains the MaskGAN translator (mask-guided, shape-consistent) per task and translates the "
        "source test split",
    ),
    Translator(
        "unsb",
        "trains the UNSB translator (unpaired neural Schroedinger bridge) per task and translates the "
        "source test split",
    ),
    Translator(
        "spade",
        "trains the SPADE translator (mask-conditioned) per task and translates the source test split",
    ),
)

# The arguments every stage container gets (compose's command, the Dockerfile targets' CMD).
CONTAINER_ARGS: tuple[str, ...] = ("--study", "/medtrans/study.yaml", "--run", "/medtrans/run")

_NAME = re.compile(r"^[a-z][a-z0-9]*$")  # image names, service names, MEDTRANS_*_<NAME> variables


def stage_names() -> tuple[str, ...]:
    return tuple(s.name for s in STAGES)


def translator_names() -> tuple[str, ...]:
    return tuple(t.name for t in TRANSLATORS)


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r} (one of: {', '.join(stage_names())}; see {__file__})")


def _stage_images(s: Stage) -> tuple[Image, ...]:
    after = tuple(i for up in s.after for i in _image_names_of(stage(up)))
    if not s.per_translator:
        return (Image(s.name, s.name, (s.name,), s.extra, s.gpu, s.weights, False, after, s.description),)
    return tuple(
        Image(t.name, s.name, (s.name, t.name), s.extra, s.gpu, s.weights, True, after, t.description)
        for t in TRANSLATORS
    )


def _image_names_of(s: Stage) -> tuple[str, ...]:
    return translator_names() if s.per_translator else (s.name,)


def images() -> tuple[Image, ...]:
    """Every image in run order, a per-translator stage expanded into one image per translator."""
    return tuple(i for s in STAGES for i in _stage_images(s))


def image(name: str) -> Image:
    for i in images():
        if i.name == name:
            return i
    raise KeyError(f"unknown image {name!r} (one of: {', '.join(i.name for i in images())}; see {__file__})")


def check() -> None:
    """The catalogue is well formed: unique plain names, upstream stages declared earlier."""
    names = [i.name for i in images()] + list(stage_names())
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{__file__}: name {name!r} must be lower-case letters and digits")
    if len({i.name for i in images()}) != len(images()) or len(set(stage_names())) != len(STAGES):
        raise ValueError(f"{__file__}: stage, translator and image names must be unique")
    seen: list[str] = []
    for s in STAGES:
        late = [up for up in s.after if up not in seen]
        if late:
            raise ValueError(f"{__file__}: stage {s.name!r} comes after {late}: declare those first")
        if s.per_translator == bool(s.description):
            raise ValueError(f"{__file__}: stage {s.name!r}: a description for the image, or per_translator")
        seen.append(s.name)


def extras() -> tuple[str, ...]:
    """The pyproject.toml extras of all stage images, each once, in run order (the wheelhouse's)."""
    return tuple(dict.fromkeys(s.extra for s in STAGES))


def as_json() -> dict:
    """The whole catalogue as plain data (`stages.py json`), for tools that do not import medtrans."""
    return {
        "stages": [asdict(s) for s in STAGES],
        "translators": [asdict(t) for t in TRANSLATORS],
        "images": [{**asdict(i), "title": i.title} for i in images()],
        "container_args": list(CONTAINER_ARGS),
    }


def _field(img: Image, name: str) -> str:
    value = getattr(img, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return " ".join(value) if isinstance(value, tuple) else str(value)


IMAGE_FIELDS = tuple(f.name for f in fields(Image)) + ("title",)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stages.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("stages", help="the local runner's stages, in order")
    sub.add_parser("translators", help="the translators")
    sub.add_parser("extras", help="the pyproject.toml extras the stage images install")
    imgs = sub.add_parser("images", help="the images (compose services), in run order")
    imgs.add_argument("--gpu", action="store_true", help="only those that reserve a GPU")
    imgs.add_argument("--weights", action="store_true", help="only those that read pretrained weights")
    one = sub.add_parser("image", help="one field of one image")
    one.add_argument("name")
    one.add_argument("field", choices=IMAGE_FIELDS)
    sub.add_parser("json", help="everything, as JSON")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.what == "stages":
        print("\n".join(stage_names()))
    elif args.what == "translators":
        print("\n".join(translator_names()))
    elif args.what == "extras":
        print("\n".join(extras()))
    elif args.what == "images":
        chosen = [i for i in images() if (i.gpu or not args.gpu) and (i.weights or not args.weights)]
        print("\n".join(i.name for i in chosen))
    elif args.what == "image":
        try:
            print(_field(image(args.name), args.field))
        except KeyError as e:
            print(f"stages.py: {e.args[0]}", file=sys.stderr)
            return 2
    else:
        print(json.dumps(as_json(), indent=2))
    return 0


check()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
