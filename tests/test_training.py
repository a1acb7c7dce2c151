"""training.py's pure parts (no TensorFlow, no YAMNet): the class order, which recording a background clip
came from, folds by source, and the config stored in model.json."""

from pathlib import Path

import numpy as np
import pytest

import training
from params import BACKGROUND_CLASS, SAMPLE_RATE, STREAM, TRAINING


def clip(name: str, label: int, seconds: float = 2.0) -> training.Clip:
    return training.Clip(Path(name), label, np.zeros((3, 1024), np.float32))


def test_sound_classes_sorted_and_background_last():
    assert training.class_order(["zebra", BACKGROUND_CLASS, "alarm"]) == ["alarm", "zebra", BACKGROUND_CLASS]
    assert training.class_order(["b", "a"]) == ["a", "b"]


@pytest.mark.parametrize("name,recording", [("kitchen_bg0003.wav", "kitchen"), ("tv-evening 12.flac", "tv-evening"),
                                            ("dog.wav", "dog"), ("airship_2_bg0007.wav", "airship_2"), ("take 3.wav", "take"),
                                            ("0042.wav", "0042")])
def test_background_clips_of_one_recording_share_a_name(name, recording):
    assert training.recording_name(name) == recording


def set_with_background(names: list[str], sounds: int = 10) -> training.TrainingSet:
    clips = [clip(f"ring{i:02d}.wav", 0) for i in range(sounds)] + [clip(name, 1) for name in names]
    data = training.TrainingSet(["doorbell", BACKGROUND_CLASS], clips,
                                clip_waveforms={i: np.full(2 * SAMPLE_RATE, i, np.float32) for i in range(len(clips))})
    data.streams = training.background_streams(data, [])
    return data


def test_background_clips_of_one_recording_stay_in_one_fold_and_sounds_are_spread():
    names = [f"{source}_bg{k:04d}.wav" for source in ("kitchen", "tv", "street", "radio") for k in range(5)]
    data = set_with_background(names)
    assert [s.name for s in data.streams] == ["kitchen", "radio", "street", "tv"]
    notes = training.assign_folds(data, 3, seed=0)
    assert notes == []
    for stream in data.streams:
        assert {data.clips[i].fold for i in stream.clips} == {stream.fold}  # a recording never straddles folds
    assert sorted({s.fold for s in data.streams}) == [0, 1, 2]
    assert sorted(np.bincount([c.fold for c in data.clips if c.label == 0])) == [3, 3, 4]  # stratified, by file


def test_recordings_of_unequal_length_are_still_dealt_whole():
    # one long recording and four short ones: folds of unequal length, but never one recording on both sides
    names = [f"tv_bg{k:04d}.wav" for k in range(12)] + [f"{s}_bg0000.wav" for s in ("kitchen", "street", "radio", "car")]
    data = set_with_background(names)
    assert training.assign_folds(data, 3, seed=0) == []
    assert len(data.streams) == 5
    for stream in data.streams:
        assert {data.clips[i].fold for i in stream.clips} == {stream.fold}


def test_one_recording_cut_into_clips_is_dealt_in_stretches_and_the_user_is_told():
    data = set_with_background([f"kitchen_bg{k:04d}.wav" for k in range(12)])
    notes = training.assign_folds(data, 3, seed=0)
    assert len(notes) == 1 and "not new audio" in notes[0]
    assert len(data.streams) == 3 and sorted(s.fold for s in data.streams) == [0, 1, 2]
    for stream in data.streams:  # stretches of consecutive clips, each clip in its stretch's fold
        assert list(stream.clips) == list(range(stream.clips[0], stream.clips[-1] + 1))
        assert {data.clips[i].fold for i in stream.clips} == {stream.fold}
        assert stream.seconds == pytest.approx(2.0 * len(stream.clips))


def test_a_recording_and_the_same_audio_cut_into_files_are_judged_on_the_same_streams():
    long = set_with_background([])
    long.streams = [training.Stream(f"track{k}", np.full(60 * SAMPLE_RATE, k, np.float32)) for k in range(4)]
    training.assign_folds(long, 2, seed=1)
    cut = set_with_background([f"track{k}_bg{j:04d}.wav" for k in range(4) for j in range(30)])
    for i, c in enumerate(cut.clips):
        if c.label == 1:
            k = int(c.path.name[5])
            cut.clip_waveforms[i] = np.full(2 * SAMPLE_RATE, k, np.float32)
    cut.streams = training.background_streams(cut, [])
    training.assign_folds(cut, 2, seed=1)
    assert sorted((s.name, s.fold, s.seconds) for s in long.streams) == sorted((s.name, s.fold, s.seconds)
                                                                               for s in cut.streams)
    assert all(np.array_equal(a.waveform, b.waveform) for a, b in zip(sorted(long.streams, key=lambda s: s.name),
                                                                       sorted(cut.streams, key=lambda s: s.name)))


def test_config_round_trips_through_model_json_and_fills_in_epochs_by_the_data():
    config = training.TrainingConfig(views=1, level_dbfs=None, balance=False, folds=3)
    assert training.TrainingConfig.from_dict({**config.as_dict(), "from_a_newer_version": 1}) == config
    clips_only = set_with_background(["a.wav", "b.wav"])
    assert training.for_data(config, clips_only).epochs == TRAINING.epochs
    clips_only.streams.append(training.Stream("evening", np.zeros(30 * 60 * SAMPLE_RATE, np.float32)))
    filled = training.for_data(config, clips_only)
    assert (filled.epochs, filled.batch_size) == (STREAM.epochs, STREAM.batch_size)
    assert training.for_data(training.TrainingConfig(epochs=7), clips_only).epochs == 7


def test_mean_history_averages_the_folds():
    mean = training.mean_history([{"loss": [2.0, 1.0], "val_loss": [3.0]}, {"loss": [4.0, 3.0, 1.0], "val_loss": [1.0]}])
    assert mean == {"loss": [3.0, 2.0], "val_loss": [2.0]}
    assert training.mean_history([]) == {}


def test_long_background_files_are_recordings_short_ones_clips_and_each_counts_once(tmp_path):
    from audio_files import write_wav
    from dataset import DatasetError, negative_files, scan_training_folder

    root = tmp_path / "training"
    write_wav(root / "background" / "evening.wav", np.zeros(int(STREAM.recording_seconds + 1) * SAMPLE_RATE, np.float32))
    write_wav(root / "background" / "dog.wav", np.zeros(2 * SAMPLE_RATE, np.float32))
    with pytest.raises(DatasetError, match=r"only background/ in .*add one sub-folder of clips per sound"):
        scan_training_folder(root)
    write_wav(root / "alarm" / "c.wav", np.zeros(SAMPLE_RATE, np.float32))
    files_by_class, _notes = scan_training_folder(root)
    clips, recordings = training.split_background(files_by_class, [])
    assert [p.name for p in clips[BACKGROUND_CLASS]] == ["dog.wav"] and [p.name for p in clips["alarm"]] == ["c.wav"]
    assert [p.name for p in recordings] == ["evening.wav"]
    twice, _notes = negative_files([root / "background", root / ".." / "training" / "background"])
    clips, recordings = training.split_background(files_by_class, twice)
    assert BACKGROUND_CLASS not in clips  # --negatives files are recordings, each file once
    assert sorted(p.name for p in recordings) == ["dog.wav", "evening.wav"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    with pytest.raises(DatasetError, match="no audio in"):
        negative_files([tmp_path / "notes"])


def test_group_by_keeps_a_group_on_one_side_across_classes():
    speakers = ["ann", "bob", "cy", "dee", "eve", "fay"]
    clips = [clip(f"{digit}_{who}_{take}.wav", label) for label, digit in enumerate((3, 7))
             for who in speakers for take in range(2)]
    data = training.TrainingSet(["three", "seven"], clips)
    training.assign_folds(data, 5, seed=0, group_by=r"_([a-z]+)_")
    for who in speakers:
        assert len({c.fold for c in data.clips if f"_{who}_" in c.path.name}) == 1, who
    assert sorted({c.fold for c in data.clips}) == [0, 1, 2, 3, 4]


def test_a_long_recording_and_clips_cut_from_it_are_one_recording():
    data = set_with_background([f"kitchen_bg{k:04d}.wav" for k in range(4)] + [f"tv_bg{k:04d}.wav" for k in range(4)])
    data.streams = training.background_streams(data, [("kitchen.wav", np.zeros(60 * SAMPLE_RATE, np.float32)),
                                                      ("street.wav", np.zeros(60 * SAMPLE_RATE, np.float32))])
    training.assign_folds(data, 2, seed=0)
    folds = {}
    for stream in data.streams:
        folds.setdefault(stream.recording, set()).add(stream.fold)
    assert sorted(folds) == ["kitchen", "street", "tv"] and all(len(f) == 1 for f in folds.values())
