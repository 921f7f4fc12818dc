"""What a training run is: one flat record of settings, so presets are small JSON files and any field can be
overridden from the command line (`--lambda-q 0.01`).

Defaults follow the reference recipes (sentence-transformers' MS MARCO bi-encoder scripts with SPLADE
regularisation on top): batch 64, learning rate 2e-5, 1,000 warm-up steps, at most 5 hard negatives per mining
system, a cross-encoder margin of 3.0 for dropping likely false negatives, max length 300 (SPLADE-max) or 256
(DistilSPLADE), and mixed precision when a GPU is there.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

RECIPES = ("max", "distil")
DEFAULT_MAX_LENGTH = {"max": 300, "distil": 256}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
WARMUPS = ("quadratic", "linear", "none")


@dataclass
class TrainingConfig:
    # what to train, on what
    recipe: str = "max"  # "max": in-batch + hard negatives (MNRL); "distil": MarginMSE on teacher score margins
    model: str = "distilbert-base-uncased"  # base network: HF id, local folder or packaged name
    dataset: str = "msmarco-passage/train"  # MS MARCO (hub files) or a folder with train-queries.tsv, train-qrels.txt
    # FLOPS regularisation
    lambda_q: float = 0.0008
    lambda_d: float = 0.0006
    lambda_warmup: str = "quadratic"  # how lambda grows from 0 to its value ("none": constant from step 0)
    lambda_warmup_ratio: float = 1 / 3  # fraction of the training steps the lambda warm-up lasts
    # optimisation
    batch_size: int = 64  # global batch: divided among the processes of a data-parallel run
    learning_rate: float = 2e-5
    warmup_steps: int = 1000  # learning-rate warm-up
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimiser steps (overrides epochs)
    max_length: int | None = None  # tokens per text; None: 300 (max) or 256 (distil)
    precision: str = "auto"  # auto: bf16 (or fp16) on GPU, fp32 on CPU
    seed: int = 42
    # training examples
    negatives_per_system: int = 5
    # SPLADE-max drops negatives scoring above min(positive scores) - margin (None: keeps all); distil keeps every
    # negative: the teacher margin is its label, so a false negative just gets a small one
    ce_score_margin: float | None = 3.0
    negative_systems: list[str] | None = None  # mining systems whose negatives are used; None: all
    max_queries: int | None = None  # use only the first N training queries (quick runs, tests)
    # local folders: how negatives are mined and who scores them
    miner: str = "splade-tiny"  # a SPLADE model (name or folder) or "bm25"
    mining_depth: int = 50  # candidates retrieved per query before filtering
    teacher: str = "splade-tiny"  # a SPLADE model (q.d) or a sentence-transformers CrossEncoder folder / id
    # bookkeeping
    logging_steps: int = 50
    save_steps: int = 1000
    save_total_limit: int = 3
    dataloader_workers: int = 0
    extra: dict = field(default_factory=dict)  # free-form notes carried into the saved config (preset name, row)

    def __post_init__(self):
        self.validate()

    @property
    def negative_margin(self) -> float | None:
        """The false-negative margin this recipe applies."""
        return self.ce_score_margin if self.recipe == "max" else None

    @property
    def effective_max_length(self) -> int:
        return self.max_length or DEFAULT_MAX_LENGTH[self.recipe]

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe {self.recipe!r}: expected one of {', '.join(RECIPES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.lambda_warmup not in WARMUPS:
            raise ValueError(f"lambda_warmup {self.lambda_warmup!r}: expected one of {', '.join(WARMUPS)}")
        if self.lambda_q < 0 or self.lambda_d < 0:
            raise ValueError(f"lambda_q={self.lambda_q}, lambda_d={self.lambda_d}: FLOPS weights cannot be negative")
        if not 0 < self.lambda_warmup_ratio <= 1:
            raise ValueError(f"lambda_warmup_ratio={self.lambda_warmup_ratio}: expected a fraction in (0, 1]")
        for name in ("batch_size", "epochs", "negatives_per_system", "mining_depth", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps}: expected a positive integer or None")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainingConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **overrides) -> "TrainingConfig":
        return TrainingConfig.from_dict({**self.to_dict(), **overrides}, source="overrides")


def field_types() -> dict[str, tuple[type, bool]]:
    """Field name -> (the plain type a command-line string converts to, whether None is allowed)."""
    hints = typing.get_type_hints(TrainingConfig)
    out = {}
    for f in dataclasses.fields(TrainingConfig):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        base = args[0] if (optional and args) else hint
        out[f.name] = (typing.get_origin(base) or base, optional)
    return out


def parse_value(name: str, text: str):
    """Converts a command-line string for field `name`; 'none' gives None for the optional fields."""
    types = field_types()
    if name not in types:
        raise ValueError(f"unknown training field {name!r}")
    kind, optional = types[name]
    if optional and text.lower() in ("none", "null"):
        return None
    try:
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind is dict:
            import json

            return json.loads(text)
        return kind(text)
    except ValueError:
        raise ValueError(f"--{name.replace('_', '-')} {text!r}: expected a {kind.__name__}") from None
