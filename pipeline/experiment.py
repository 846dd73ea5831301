"""An experiment as a file: `experiments/<name>.toml` (paper, demo, minc-subset) or a user's own,
read into the frozen Experiment that the pipeline and the study run.

TOML because it is the format of pyproject.toml, read by the standard library (tomllib) and
written with tomli-w. The keys are Experiment's fields; a list is a tuple; `""` is none (an
optional folder or count not set); a key left out keeps its base's value. `base = "demo"` (the
name of a file beside the one that names it or in experiments/, or a file relative to it)
starts from another experiment, else the start is Experiment()'s defaults, the paper's recipe.
`description = "..."` says what the file is, for a listing; it is not inherited. An unknown key
or a value of the wrong type is one line naming the file and the key. The study's rows
(research/rows/) are such files too, overlays of the experiment the study runs (chain).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import tomli_w

from classifier.transforms import PAPER_SIZES
from foundation.sets import SetId

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SUFFIX = ".toml"
BASE = "base"
DESCRIPTION = "description"


@dataclass(frozen=True)
class Experiment:
    data: str = "data/minc-2500"
    out: str = "data/shards"
    runs: str = "runs/train"
    reports: str = "reports"
    qualities: tuple[int, ...] = (1, 4, 8)
    # Pillow qualities of the classical anchors; on 24 MINC-2500 test patches JPEG 5/20/50/80
    # gave 0.24/0.46/0.76/1.24 bpp and WebP 5/20/60/90 0.18/0.29/0.57/1.43 bpp
    jpeg_qualities: tuple[int, ...] = (5, 20, 50, 80)
    webp_qualities: tuple[int, ...] = ()
    codecs: str | None = None  # folder of codec-q<Q>.pth; None: CompressAI's pretrained
    splits: tuple[int, ...] = (1,)
    epochs: int = 30
    max_steps: int | None = None  # optimizer steps per epoch at most (smoke runs)
    batch_size: int = 32
    lr: float = 0.01
    lr_steps: tuple[int, ...] = (10, 20)
    resize: int = PAPER_SIZES.resize
    crop: int = PAPER_SIZES.crop
    latent_resize: int = PAPER_SIZES.latent_resize
    latent_crop: int = PAPER_SIZES.latent_crop
    init: str = "imagenet"  # every classifier's start (classifier.models.INITS, or a file)
    latent_init: str | None = None  # the compressed-domain classifiers' start, where not `init`
    # >0: that start's latent branches fitted further, without labels, to init's conv_2x on this
    # run's own training latents (its qualities pooled) for these steps before Comp. trains
    # (trainer.latent_start; docs/comp-study, rows latent-hint-task)
    latent_hint_steps: int = 0
    # between Comp.'s latent branches and its trunk: none, se, res or up-res
    # (classifier.models.ADAPTERS); the fits above fit it with the branches
    latent_adapter: str = "none"
    # >0: each Comp. starts from the trained Anchor 2 of its set and seed carried to the
    # latent: its latent branches (from the start above) fitted, without labels, for these
    # steps to that Anchor 2's conv_2x on the quality's training latents, under its trunk and
    # fc (pipeline.plan.transplant_fit; docs/comp-study, row transplant-anchor2)
    transplant_steps: int = 0
    # Comp.'s own learning rate (None: lr), divided as lr is (docs/comp-study, row
    # transplant-res-lr-0.001)
    latent_lr: float | None = None
    nproc: int = 2  # processes of each trainer (torchrun --nproc_per_node)
    lanes: int = 1  # trainers at once, the node's cores shared out among them as threads
    loader_workers: int | None = None  # per trainer process; None: the trainer's default
    prep_workers: int | None = None
    shard_size: int = 256
    ablations: bool = False  # also the y-only and sigma-only compressed-domain classifiers
    # Comp. learns from the Anchor 2 of its set and seed: that classifier's conv_2x map is a hint
    # for its latent branches and its weights start Comp.'s trunk (trainer.distill)
    distill: bool = False
    every_rate: bool = False  # also one cResNet-39 trained on every quality's latents together
    seeds: int = 1  # every classifier trained with seeds 0..seeds-1 (evaluation.seeds: folders)
    # an evaluation-only set (never trained on): prepared like `data` under <out>/extra-test,
    # every classifier also evaluated on its test split (MINC layout, empty train/validate)
    extra_test: str | None = None
    min_seconds: float = 2.0  # efficiency timing per batch size
    device: str = "auto"  # training, evaluation, efficiency: auto (CUDA if any), cpu, cuda
    # every classifier's autocast, kept by its evaluation: auto (bf16 where it multiplies faster
    # than fp32: CUDA with bf16, CPUs with AMX, AMD with AVX-512 BF16), fp32, bf16
    # (foundation.runtime)
    precision: str = "auto"
    mlflow_experiment: str = "classifiers"  # where the runs and the report go in MLflow

    @property
    def dataset(self) -> str:
        return Path(self.data).name

    @property
    def extra_label(self) -> str | None:
        """The evaluation-only set as the report names it: its folder's name."""
        return Path(self.extra_test).resolve().name if self.extra_test else None

    @property
    def classical(self) -> tuple[SetId, ...]:
        """The classical anchors' sets: jpeg<P> for each JPEG quality, then webp<P>."""
        return tuple(SetId("jpeg", q) for q in self.jpeg_qualities) + \
            tuple(SetId("webp", q) for q in self.webp_qualities)


FIELDS = {f.name: f for f in fields(Experiment)}
# what a file gives for each field's type (the annotations are strings: __future__.annotations)
KINDS = {"tuple[int, ...]": (list, "a list of integers"), "bool": (bool, "true or false"),
         "float": (float, "a number"), "int": (int, "an integer"), "str": (str, "a string")}


def kind(key: str) -> tuple[type, str, bool]:
    """What a key takes: the Python type a file gives, its description, whether "" is none."""
    annotation = FIELDS[key].type
    wanted, text = KINDS[annotation.removesuffix(" | None")]
    return wanted, text, annotation.endswith(" | None")


def names() -> list[str]:
    """The experiments that come with the project (experiments/*.toml)."""
    return sorted(p.stem for p in EXPERIMENTS.glob(f"*{SUFFIX}"))


def find(name: str | Path, relative_to: Path | None = None) -> Path:
    """The file of an experiment: a path to a file, or the name of one beside `relative_to`
    (the file that names it as its base) or in experiments/."""
    path = Path(name)
    if not path.is_absolute() and relative_to is not None:
        beside = next((p for p in (relative_to / path, relative_to / f"{name}{SUFFIX}")
                       if p.is_file()), None)
        path = beside or path
    if path.is_file():
        return path
    if path.suffix != SUFFIX and (EXPERIMENTS / f"{name}{SUFFIX}").is_file():
        return EXPERIMENTS / f"{name}{SUFFIX}"
    raise ValueError(f"experiment {str(name)!r}: no such file, nor one of {', '.join(names())} "
                     f"(experiments/)")


def load(name: str | Path, relative_to: Path | None = None) -> Experiment:
    """The Experiment a file describes (its base first, then its own keys)."""
    e = Experiment()
    for path, table in chain(name, relative_to):
        e = replace(e, **values(table, path))
    return e


def chain(name: str | Path, relative_to: Path | None = None, _seen: tuple = ()
          ) -> list[tuple[Path, dict]]:
    """The files an experiment is read from, the root of its base chain first, each with its
    TOML table less `base`: what load() folds into an Experiment, and what a reader of further
    tables (the study's rows) reads."""
    path = find(name, relative_to)
    if path.resolve() in _seen:
        raise ValueError(f"{path}: its {BASE} chain comes back to itself")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not TOML ({err})") from None
    base = table.pop(BASE, None)
    if base is not None and not isinstance(base, str):
        raise ValueError(f"{path}: {BASE} = {base!r}: give an experiment's name or file")
    below = chain(base, path.parent, (*_seen, path.resolve())) if base else []
    return [*below, (path, table)]


def values(table: dict, where: Path | str) -> dict:
    """The fields a TOML table sets, checked against Experiment's types (its description
    aside)."""
    found = {}
    for key, value in table.items():
        if key == DESCRIPTION:
            if not isinstance(value, str):
                raise ValueError(f"{where}: {DESCRIPTION} = {value!r}: give a string")
            continue
        if key not in FIELDS:
            raise ValueError(f"{where}: unknown key {key!r}; the keys are {', '.join(FIELDS)}")
        found[key] = _checked(key, value, where)
    return found


def _checked(key: str, value, where):
    wanted, text, optional = kind(key)
    if optional and value == "":
        return None
    if wanted is list:
        ok = isinstance(value, list) and all(type(v) is int for v in value)
    else:  # an integer is a number too; bool is not an integer here
        ok = type(value) is wanted or (wanted is float and type(value) is int)
    if not ok:
        raise ValueError(f"{where}: {key} = {value!r}: give {text}"
                         + (' or "" for none' if optional else ""))
    return tuple(value) if wanted is list else float(value) if wanted is float else value


def to_toml(e: Experiment) -> str:
    """The experiment as a file that load() reads back to the same Experiment (none as "")."""
    return tomli_w.dumps({k: "" if v is None else list(v) if isinstance(v, tuple) else v
                          for k, v in asdict(e).items()})
