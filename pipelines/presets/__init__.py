"""Presets: one small JSON file per row of the reference results table (A-F and the other rows).

A preset holds only what differs from the defaults of `training.config.TrainingConfig`, plus a description.
"""
from __future__ import annotations

import json
from pathlib import Path

from training.config import TrainingConfig

FOLDER = Path(__file__).parent


def preset_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.json"))


def load_preset(name: str) -> TrainingConfig:
    """The preset `name` (A..F or another row's name) or a JSON file path, as a full TrainingConfig."""
    path = Path(name)
    if not (path.suffix == ".json" and path.exists()):
        path = FOLDER / f"{name}.json"
    if not path.exists():
        raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(preset_names())} or a JSON file")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of training settings")
    description = values.pop("description", "")
    values.setdefault("extra", {}).update({"preset": path.stem, "description": description})
    return TrainingConfig.from_dict(values, source=str(path))
