"""Class names: YAMNet's AudioSet class map (CSV) and a custom model's class_names.txt.

Pure Python, no TensorFlow, so listing or matching names never pays for a model load.
"""

import csv
from pathlib import Path


class ClassMapError(Exception):
    """A class map that cannot be read or a class name that is not in it."""


def load_yamnet_class_names(csv_path) -> list[str]:
    """Display names in model output order from YAMNet's `yamnet_class_map.csv` (index,mid,display_name)."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ClassMapError(f"cannot read YAMNet class map {csv_path}: {e.strerror}") from e
    try:
        rows.sort(key=lambda row: int(row["index"]))
        return [row["display_name"] for row in rows]
    except (KeyError, TypeError, ValueError) as e:
        raise ClassMapError(f"{csv_path} is not a YAMNet class map (expected columns index,mid,display_name)") from e


def read_class_names(path) -> list[str]:
    """One class name per line, in the order of the model's outputs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ClassMapError(f"cannot read class names {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ClassMapError(f"{path} is not UTF-8 text: save it as UTF-8, one class name per line") from e
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ClassMapError(f"{path} lists no class names")
    return names


def format_class_names(names: list[str]) -> str:
    """The text of class_names.txt."""
    return "".join(f"{name}\n" for name in names)


def find_class_indices(names: list[str], wanted: list[str]) -> list[int]:
    """Indices of `wanted` names (case-insensitive) in `names`; unknown names raise with a hint."""
    by_lower = {name.lower(): i for i, name in enumerate(names)}
    indices = []
    for name in wanted:
        key = name.strip().lower()
        if key not in by_lower:
            close = [n for n in names if key and key in n.lower()][:5]
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise ClassMapError(f"unknown class name {name.strip()!r}{hint}")
        indices.append(by_lower[key])
    return indices
