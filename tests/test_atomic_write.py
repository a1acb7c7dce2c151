"""atomic_write: a crash while writing leaves the previous file intact and no temporary behind."""

import pytest

from atomic_write import atomic_output, write_text_atomic


def test_crash_mid_write_keeps_old_file(tmp_path):
    target = tmp_path / "model.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half a mod")
            raise RuntimeError("power cut")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_success_replaces_and_keeps_suffix(tmp_path):
    target = tmp_path / "sub" / "classifier.keras"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == target.parent and not tmp.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["classifier.keras"]
