"""dataset: scanning class folders, refusals, the by-file split and the embedding cache. TF-free."""

from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write_wav
from dataset import (
    DatasetError,
    EmbeddingCache,
    cross_validation_folds,
    file_digest,
    scan_training_folder,
    split_by_file,
)


def make_tree(root, counts: dict[str, int]):
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_wav(root / name / f"{name}_{i}.wav", tone(200 + 50 * i, 0.2))
    return root


def test_scan_finds_classes_and_notes_ignored_files(tmp_path):
    make_tree(tmp_path, {"doorbell": 3, "background": 2})
    (tmp_path / "doorbell" / "notes.txt").write_text("x")
    (tmp_path / "doorbell" / ".DS_Store").write_text("x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "loose.wav").write_text("x")
    (tmp_path / "README.md").write_text("the layout")
    files, notes = scan_training_folder(tmp_path)
    assert list(files) == ["background", "doorbell"]
    assert [len(v) for v in files.values()] == [2, 3]
    assert any("notes.txt" in n for n in notes) and any("loose.wav" in n for n in notes)
    assert not any("DS_Store" in n or "README" in n for n in notes)


@pytest.mark.parametrize(
    "counts,message",
    [
        ({"doorbell": 3}, r"only one class \('doorbell'\).*100%.*background"),
        ({"doorbell": 3, "glass": 0}, r"class folder\(s\) with no audio: .*glass"),
        ({}, "no audio found"),
        ({"a": 0, "b": 0}, "no audio found"),
    ],
    ids=["one-class", "empty-class", "no-classes", "no-audio"],
)
def test_refusals(tmp_path, counts, message):
    make_tree(tmp_path, counts)
    with pytest.raises(DatasetError, match=message):
        scan_training_folder(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_training_folder(tmp_path / "nope")


def test_split_is_stratified_by_file_and_reproducible():
    files = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(5)], "c": ["c0"]}
    train, val = split_by_file(files, 0.2, seed=1)
    assert not {p for p, _ in train} & {p for p, _ in val}
    assert sorted(p for p, _ in train + val) == sorted(sum(files.values(), []))
    val_per_class = {label: sum(1 for _, l in val if l == label) for label in range(3)}
    assert val_per_class == {0: 2, 1: 1, 2: 0}  # a single-file class stays in training
    assert split_by_file(files, 0.2, seed=1) == (train, val)
    assert split_by_file(files, 0.2, seed=2) != (train, val)
    assert split_by_file(files, 0.0, seed=1)[1] == []


def test_cache_round_trip_keyed_by_content_and_identity(tmp_path):
    a = write_wav(tmp_path / "a.wav", tone(440, 0.2))
    b = write_wav(tmp_path / "copy" / "a_renamed.wav", tone(440, 0.2))
    assert file_digest(a) == file_digest(b)
    cache = EmbeddingCache(tmp_path / "cache", "sha256:abc")
    embeddings = np.random.default_rng(0).standard_normal((3, 1024)).astype(np.float32)
    assert cache.get(file_digest(a)) is None
    cache.put(file_digest(a), embeddings)
    np.testing.assert_array_equal(cache.get(file_digest(b)), embeddings)
    assert EmbeddingCache(tmp_path / "cache", "sha256:other").get(file_digest(a)) is None
    # A damaged entry is treated as a miss, not a crash.
    cache._path(file_digest(a)).write_bytes(b"garbage")
    assert cache.get(file_digest(a)) is None


def test_cross_validation_folds_test_every_file_once_stratified():
    files = {"a": [Path(f"a{i}.wav") for i in range(10)], "b": [Path(f"b{i}.wav") for i in range(7)]}
    folds = cross_validation_folds(files, 5, seed=0)
    tested = [path for _train, test in folds for path, _ in test]
    assert sorted(tested) == sorted(files["a"] + files["b"])
    for train, test in folds:
        assert not {p for p, _ in train} & {p for p, _ in test}
        assert sum(1 for _, label in test if label == 0) == 2  # 10 files of class a over 5 folds
        assert 1 <= sum(1 for _, label in test if label == 1) <= 2


def test_cross_validation_group_by_keeps_a_speaker_on_one_side():
    files = {d: [Path(f"{d}_{speaker}_{n}.wav") for speaker in ("george", "jackson", "lucas") for n in range(3)]
             for d in ("0", "1")}
    folds = cross_validation_folds(files, 3, seed=0, group_by=r"_([a-z]+)_")
    for train, test in folds:
        test_speakers = {p.name.split("_")[1] for p, _ in test}
        train_speakers = {p.name.split("_")[1] for p, _ in train}
        assert len(test_speakers) == 1 and not test_speakers & train_speakers
    with pytest.raises(DatasetError, match="needs at least 4 groups, found 3"):
        cross_validation_folds(files, 4, seed=0, group_by=r"_([a-z]+)_")
    with pytest.raises(DatasetError, match="does not match file"):
        cross_validation_folds(files, 2, seed=0, group_by=r"^x")


def test_cross_validation_never_leaves_a_fold_empty_and_counts_files():
    files = {"a": [Path("a/0.wav"), Path("a/1.wav"), Path("a/2.wav")], "b": [Path("b/0.wav"), Path("b/1.wav"), Path("b/2.wav")]}
    for seed in range(20):
        folds = cross_validation_folds(files, 5, seed=seed)
        assert all(test for _train, test in folds)
    with pytest.raises(DatasetError, match="needs at least 7 files, found 6"):
        cross_validation_folds(files, 7, seed=0)


def test_group_by_takes_the_first_group_that_matched():
    files = {"x": [Path("a_george_1.wav"), Path("7.wav")], "y": [Path("b_lucas_2.wav"), Path("8.wav")]}
    folds = cross_validation_folds(files, 2, seed=0, group_by=r"_([a-z]+)_|(\d)")
    assert sorted(len(test) for _train, test in folds) == [2, 2]


def test_empty_cache_entry_is_a_miss(tmp_path):
    cache = EmbeddingCache(tmp_path, "sha256:abc")
    cache._path("ab" * 32).parent.mkdir(parents=True)
    cache._path("ab" * 32).write_bytes(b"")
    assert cache.get("ab" * 32) is None
