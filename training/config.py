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


def setting(default, help: str, **kwargs):
    """A TrainingConfig field with its help text (shown by `splade train --help`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class TrainingConfig:
    """Every setting of a training run; a preset is a JSON object of the fields that differ from these defaults."""

    # what to train, on what
    recipe: str = setting("max", "max: SPLADE-max, in-batch and hard negatives (MultipleNegativesRanking); "
                                 "distil: DistilSPLADE, MarginMSE on the teacher's score margins")
    model: str = setting("distilbert-base-uncased", "base network: Hugging Face id, local folder or packaged name")
    dataset: str = setting("msmarco-passage/train", "msmarco-passage/train (the hub's files, or local copies), or a "
                                                    "folder with train-queries.tsv, train-qrels.txt, corpus.jsonl")
    # FLOPS regularisation
    lambda_q: float = setting(0.0008, "weight of the FLOPS regulariser on the queries (over the global batch)")
    lambda_d: float = setting(0.0006, "weight of the FLOPS regulariser on the documents (over the global batch)")
    lambda_warmup: str = setting("quadratic", "how lambda grows from 0 to its value: quadratic, linear, or none "
                                              "(constant from the first step)")
    lambda_warmup_ratio: float = setting(1 / 3, "fraction of the training steps the lambda warm-up lasts")
    # optimisation
    batch_size: int = setting(64, "global batch (rows per optimiser step), divided among the processes of a "
                                  "data-parallel run")
    learning_rate: float = setting(2e-5, "peak learning rate (AdamW), reached after the warm-up, then linear decay")
    warmup_steps: int = setting(1000, "learning-rate warm-up, in optimiser steps")
    epochs: int = setting(1, "passes over the training queries, each with the next positive and negative of each")
    max_steps: int | None = setting(None, "stop after this many optimiser steps (overrides epochs); none: all rows")
    max_length: int | None = setting(None, "tokens per text in training (and in mining and the teacher); none: 300 "
                                           "for max, 256 for distil")
    precision: str = setting("auto", "auto (bf16 where the GPU has it, else fp16; fp32 on CPU), fp32, fp16, bf16")
    seed: int = setting(42, "seed of the model initialisation, the data order and the row shuffle")
    # training examples
    negatives_per_system: int = setting(5, "at most this many hard negatives per mining system and query")
    # SPLADE-max drops negatives scoring above min(positive scores) - margin (None: keeps all); distil keeps every
    # negative: the teacher margin is its label, so a false negative just gets a small one
    ce_score_margin: float | None = setting(3.0, "SPLADE-max drops a negative the teacher scores above the lowest "
                                                 "positive minus this margin (a likely unjudged positive); none: "
                                                 "keeps all; distil keeps all anyway")
    negative_systems: list[str] | None = setting(None, "comma-separated mining systems whose negatives are used "
                                                       "(MS MARCO: bm25, msmarco-distilbert-base-v3, ...); none: all")
    max_queries: int | None = setting(None, "use only the first N training queries (quick runs, tests); none: all")
    # local folders: how negatives are mined and who scores them
    miner: str = setting("splade-tiny", "dataset folders: the SPLADE model (name or folder) that mines hard "
                                        "negatives, or bm25 (Pyserini)")
    mining_depth: int = setting(50, "dataset folders: candidates retrieved per query before the filtering")
    teacher: str = setting("splade-tiny", "dataset folders: who scores (query, passage) pairs: a SPLADE model "
                                          "(q.d) or a sentence-transformers CrossEncoder folder / id")
    # bookkeeping
    logging_steps: int = setting(50, "a line of training-log.csv every N steps")
    save_steps: int = setting(1000, "a checkpoint every N steps")
    save_total_limit: int = setting(3, "checkpoints kept (the oldest are deleted)")
    dataloader_workers: int = setting(0, "data-loader worker processes (0: in the training process)")
    extra: dict = setting({}, "free-form notes carried into the saved config (preset name, description), as JSON")

    def __post_init__(self):
        self.validate()

    @property
    def negative_margin(self) -> float | None:
        """The false-negative margin this recipe applies (None for distil: its label is the margin)."""
        return self.ce_score_margin if self.recipe == "max" else None

    @property
    def effective_max_length(self) -> int:
        """Tokens per text: `max_length`, else the recipe's default (300 max, 256 distil)."""
        return self.max_length or DEFAULT_MAX_LENGTH[self.recipe]

    def validate(self) -> None:
        """Checks every field (called on construction).

        Raises:
            ValueError: naming the field, its value and what was expected.
        """
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
        """The settings as a plain JSON-able dict (what training-config.json holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainingConfig:
        """A config from a dict of fields (a preset file, a saved training-config.json).

        Args:
            values: field name -> value; missing fields keep their defaults.
            source: what to name in messages (the file).

        Returns:
            The validated config.

        Raises:
            ValueError: an unknown field (the known ones are listed) or an invalid value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}; "
                             f"known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **overrides) -> TrainingConfig:
        """A copy with `overrides` applied and validated.

        Raises:
            ValueError: an unknown field or an invalid value.
        """
        return TrainingConfig.from_dict({**self.to_dict(), **overrides}, source="overrides")


def field_help() -> dict[str, str]:
    """Field name -> its help text (the `help` metadata of each field; `splade train --help` shows it)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainingConfig)}


def field_types() -> dict[str, tuple[type, bool]]:
    """Field name -> (the plain type a command-line string converts to, whether None is allowed).

    Returns:
        {field: (int | float | str | list | dict, optional)} in field order.
    """
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
    """Converts a command-line string for field `name`; 'none' gives None for the optional fields.

    Args:
        name: a TrainingConfig field.
        text: the flag's value as typed (lists comma-separated, dicts as JSON).

    Returns:
        The value in the field's type.

    Raises:
        ValueError: an unknown field, or a value that does not convert (naming the flag).
    """
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
