"""Write outputs to a temporary name beside the target, then rename: a crash leaves the old file intact."""

import contextlib
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path` (same suffix); on success rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so the final os.replace is an atomic rename on one filesystem; the writer
    # creates the file itself, so it gets the user's usual permissions.
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}"
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one rename."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
