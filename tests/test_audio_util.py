"""audio_util: loading, conversion round trips, the convert CLI. TF-free, fast."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

import audio_util
from audio_util import AudioError, load_audio_16k_mono, pad_to_length, rms_dbfs, trim_silence, walk_audio_files
from conftest import noise, tone, write_wav
from params import SAMPLE_RATE


def dominant_frequency(waveform: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_load_resamples_any_rate_and_sample_format(tmp_path, sr, subtype):
    path = write_wav(tmp_path / "a.wav", tone(440, 1.0, sr=sr), sr=sr, subtype=subtype)
    waveform = load_audio_16k_mono(path)
    assert waveform.dtype == np.float32
    assert abs(len(waveform) - SAMPLE_RATE) <= 2
    assert abs(dominant_frequency(waveform) - 440) < 3
    assert 0.45 < np.abs(waveform).max() <= 0.52


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = tone(440, 1.0), tone(1000, 1.0)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.stack([left, right], axis=1), SAMPLE_RATE)
    waveform = load_audio_16k_mono(path)
    np.testing.assert_allclose(waveform, (left + right) / 2, atol=1e-4)


@pytest.mark.parametrize(
    "suffix,fmt,subtype", [(".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS"), (".mp3", "MP3", "MPEG_LAYER_III")]
)
def test_compressed_formats_load(tmp_path, suffix, fmt, subtype):
    path = tmp_path / f"a{suffix}"
    soundfile.write(str(path), tone(440, 1.0, sr=44100), 44100, format=fmt, subtype=subtype)
    waveform = load_audio_16k_mono(path)
    assert abs(dominant_frequency(waveform) - 440) < 3


def test_float_file_out_of_range_is_clipped_and_nan_zeroed(tmp_path):
    data = np.array([0.5, 2.0, -3.0, np.nan] * 4000, dtype=np.float32)
    path = write_wav(tmp_path / "hot.wav", data, subtype="FLOAT")
    waveform = load_audio_16k_mono(path)
    assert waveform.max() <= 1.0 and waveform.min() >= -1.0
    assert not np.isnan(waveform).any()


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_text("this is not audio"), "not a readable audio file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(40)), "not a readable audio file"),
        (lambda p: soundfile.write(str(p), np.zeros(0, np.float32), SAMPLE_RATE), "no audio samples"),
    ],
    ids=["empty", "text", "corrupt-header", "zero-frames"],
)
def test_bad_files_raise_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio_16k_mono(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_text_file_named_mp3_is_not_called_missing(tmp_path):
    """libsndfile says "does not exist" of an MP3 it cannot decode; the file is there, so we say what is wrong."""
    path = tmp_path / "notes.mp3"
    path.write_text("# README\n" * 200)
    with pytest.raises(AudioError, match="not a readable audio file") as info:
        load_audio_16k_mono(path)
    assert "does not exist" not in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio_16k_mono(tmp_path / "nope.wav")


def test_pure_helpers():
    assert len(pad_to_length(np.ones(10, np.float32), 100)) == 100
    assert len(pad_to_length(np.ones(200, np.float32), 100)) == 200
    assert rms_dbfs(np.zeros(100)) == float("-inf")
    assert abs(rms_dbfs(np.ones(100)) - 0.0) < 1e-9
    assert abs(rms_dbfs(tone(440, 1.0, amplitude=1.0)) - (-3.01)) < 0.05


def test_walk_skips_hidden_and_separates_non_audio(tmp_path):
    write_wav(tmp_path / "a" / "x.wav", tone(440, 0.1))
    write_wav(tmp_path / "a" / ".hidden.wav", tone(440, 0.1))
    write_wav(tmp_path / ".git" / "y.wav", tone(440, 0.1))
    (tmp_path / "a" / "notes.txt").write_text("hi")
    audio, other = walk_audio_files(tmp_path)
    assert audio == [tmp_path / "a" / "x.wav"]
    assert other == [tmp_path / "a" / "notes.txt"]


def build_input_tree(root: Path) -> None:
    write_wav(root / "a.wav", tone(440, 1.0, sr=8000), sr=8000)
    (root / "sub").mkdir()
    soundfile.write(str(root / "sub" / "b.flac"), tone(660, 1.0, sr=48000), 48000)
    soundfile.write(str(root / "sub" / "c.wav"), np.stack([tone(440, 0.5, 22050)] * 2, axis=1), 22050, subtype="FLOAT")
    (root / "sub" / "bad.wav").write_text("garbage")
    (root / "readme.txt").write_text("not audio")


def test_convert_mirrors_tree_skips_bad_files_and_exits_nonzero(tmp_path, capsys):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    build_input_tree(source)
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}

    code = audio_util.main(["convert", str(source), str(out)])

    captured = capsys.readouterr()
    assert code == 1
    assert "converted 3 file(s)" in captured.out and "1 file(s) failed" in captured.out
    assert "bad.wav" in captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.wav", "sub/b.wav", "sub/c.wav"]
    for path in out.rglob("*.wav"):
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert abs(dominant_frequency(load_audio_16k_mono(out / "sub" / "b.wav")) - 660) < 3
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before  # inputs untouched
    assert not list(out.rglob(".*"))  # no temporary files left behind


def test_convert_all_good_exits_zero(tmp_path, capsys):
    write_wav(tmp_path / "in" / "a.wav", noise(0.5, sr=44100), sr=44100)
    assert audio_util.main(["convert", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a.wav").is_file()


def test_convert_refuses_output_inside_input(tmp_path, capsys):
    write_wav(tmp_path / "in" / "a.wav", tone(440, 0.5))
    with pytest.raises(SystemExit) as info:
        audio_util.main(["convert", str(tmp_path / "in"), str(tmp_path / "in" / "out")])
    assert info.value.code == 2
    assert "inside input" in capsys.readouterr().err
    assert not (tmp_path / "in" / "out").exists()


def test_convert_single_file_to_named_wav_never_overwrites_input(tmp_path, capsys):
    source = write_wav(tmp_path / "a.wav", tone(440, 0.5, sr=8000), sr=8000)
    original = source.read_bytes()
    assert audio_util.main(["convert", str(source), str(tmp_path / "b.wav")]) == 0
    assert soundfile.info(str(tmp_path / "b.wav")).samplerate == SAMPLE_RATE
    assert audio_util.main(["convert", str(source), str(source)]) == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert source.read_bytes() == original


def test_convert_missing_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        audio_util.main(["convert", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert info.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_background_cuts_recordings_and_generates_noise(tmp_path, capsys):
    ambient = write_wav(tmp_path / "kitchen.wav", noise(5.0, sr=44100, amplitude=0.1), sr=44100)
    out = tmp_path / "training" / "background"
    assert audio_util.main(["background", str(ambient), str(out), "--seconds", "2", "--synthetic", "8"]) == 0
    assert "wrote 11 background clip(s)" in capsys.readouterr().out  # 2 + 2 + a 1 s tail (half a clip kept) + 8
    cut = sorted(out.glob("kitchen_bg*.wav"))
    assert [soundfile.info(str(p)).frames for p in cut] == [32000, 32000, 16000]
    levels = {p.name.split("_")[1]: rms_dbfs(load_audio_16k_mono(p)) for p in out.glob("synthetic_*.wav")}
    assert set(levels) == {"white", "pink", "brown", "silence"}
    assert -76 < levels["silence"] < -59
    for kind in ("white", "pink", "brown"):
        assert -51 < levels[kind] < -14


def test_background_pink_noise_is_pinker_than_white():
    low_share = {}
    for name, clip in audio_util.synthetic_background(4, SAMPLE_RATE * 2, seed=1):
        spectrum = np.abs(np.fft.rfft(clip)) ** 2
        low_share[name.split("_")[1]] = spectrum[: len(spectrum) // 8].sum() / spectrum.sum()
    assert low_share["white"] < low_share["pink"] < low_share["brown"]


def test_background_reports_bad_inputs_and_needs_something_to_do(tmp_path, capsys):
    (tmp_path / "broken.wav").write_text("no")
    assert audio_util.main(["background", str(tmp_path / "broken.wav"), str(tmp_path / "nope.wav"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "broken.wav: not a readable audio file" in err and "nope.wav: no such file or folder" in err
    with pytest.raises(SystemExit) as info:
        audio_util.main(["background", str(tmp_path / "out")])
    assert info.value.code == 2


def test_convert_into_a_parent_folder_never_overwrites_another_input(tmp_path, capsys):
    inner = write_wav(tmp_path / "a" / "b" / "x.wav", tone(440, 0.5, sr=8000), sr=8000)
    write_wav(tmp_path / "a" / "b" / "b" / "x.wav", tone(660, 0.5, sr=8000), sr=8000)
    original = inner.read_bytes()
    assert audio_util.main(["convert", str(tmp_path / "a" / "b"), str(tmp_path / "a")]) == 1
    assert inner.read_bytes() == original
    assert "would overwrite an input" in capsys.readouterr().err


def test_unwritable_output_is_one_line(tmp_path, capsys):
    write_wav(tmp_path / "in" / "x.wav", tone(440, 0.5))
    (tmp_path / "afile").write_text("a file, not a folder")
    assert audio_util.main(["convert", str(tmp_path / "in"), str(tmp_path / "afile" / "sub")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert audio_util.main(["background", "--synthetic", "1", str(tmp_path / "afile" / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and err.count("\n") == 1


def test_background_keeps_clips_of_recordings_with_the_same_name(tmp_path, capsys):
    write_wav(tmp_path / "day1" / "rec.wav", noise(2.0, seed=1))
    write_wav(tmp_path / "day2" / "rec.wav", noise(2.0, seed=2))
    out = tmp_path / "out"
    assert audio_util.main(["background", str(tmp_path / "day1"), str(tmp_path / "day2"), str(out)]) == 0
    assert len(list(out.glob("*.wav"))) == 2


def test_trim_silence_keeps_a_margin_and_handles_silence():
    w = np.concatenate([np.zeros(8000), tone(500, 0.5), np.zeros(4000)])
    assert trim_silence(w) == (8000 - 800, 16000 + 800)
    assert trim_silence(np.zeros(1000)) == (0, 0)


def test_convert_of_nothing_that_is_audio_exits_nonzero(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    assert audio_util.main(["convert", str(notes), str(tmp_path / "x.wav")]) == 1
    assert "converted 0 file(s)" in capsys.readouterr().out and not (tmp_path / "x.wav").exists()
