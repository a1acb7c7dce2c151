"""fingerprint.py's dense landmarks (the --dense option), `match` reporting each sound once, and the SNR
a match reports. Generated sounds and real FSDD recordings; no TensorFlow; seconds."""

import dataclasses
import json

import numpy as np
import pytest

import fingerprint
import fingerprint_listener
import matching
from audio_util import load_audio_16k_mono
from conftest import write_wav
from fingerprint_listener import load_index
from fingerprint_params import FINGERPRINT, MATCH
from landmarks import LandmarkExtractor
from matching import match_waveform
from params import SAMPLE_RATE
from synth_sounds import chime, jingle, melody_stream, mix_at_snr, noise_stream

DENSE = dataclasses.replace(MATCH, dense=True)


def slam(rng: np.random.Generator) -> np.ndarray:
    """A door slammed, rattled and slammed again: bursts of coloured noise, no tone to make onset landmarks of."""
    pieces = []
    for seconds, decay, colour in ((0.25, 18.0, "brown"), (0.3, 12.0, "pink"), (0.5, 6.0, "white"),
                                   (0.2, 25.0, "pink"), (0.4, 10.0, "brown")):
        burst = noise_stream(rng, seconds, color=colour)
        burst *= np.exp(-decay * np.arange(len(burst)) / SAMPLE_RATE)
        pieces += [burst, np.zeros(int(0.12 * SAMPLE_RATE), np.float32)]
    out = np.concatenate(pieces)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def sounds():
    rng = np.random.default_rng(31)
    return {"door": slam(rng), "bell": chime(rng)}


@pytest.fixture(scope="module")
def db(tmp_path_factory, sounds):
    root = tmp_path_factory.mktemp("dense") / "sounds"
    write_wav(root / "door" / "slam.wav", sounds["door"])
    write_wav(root / "bell" / "ding.wav", sounds["bell"])
    write_wav(root / "bell" / "ding_quiet.wav", 0.5 * sounds["bell"])  # the same chime, recorded again more quietly
    path = root.parent / "fingerprints.sqlite"
    assert fingerprint.main(["add", str(root), "--db", str(path)]) == 0
    return path


def test_dense_landmarks_do_not_depend_on_how_the_stream_is_chunked(fsdd_dir):
    speech = np.concatenate([load_audio_16k_mono(fsdd_dir / f"{d}_theo_0.wav") for d in range(5)])
    whole = LandmarkExtractor(dense=True)
    whole.push(speech)
    expected = whole.take_dense(finish=True)
    chunked, pieces, at = LandmarkExtractor(dense=True), [], 0
    for size in np.random.default_rng(3).integers(1, 3000, 400):
        chunked.push(speech[at:at + size])
        pieces.append(chunked.take_dense())
        at += size
    chunked.push(speech[at:])
    pieces.append(chunked.take_dense(finish=True))
    assert len(expected[0]) > 500
    for got, want in zip((np.concatenate([p[k] for p in pieces]) for k in (0, 1)), expected):
        np.testing.assert_array_equal(np.sort(got), np.sort(want))


def slam_in_music(sounds) -> np.ndarray:
    """The slam 6 dB above 10 s of generated music, at 4 s, the whole at 0.9 peak (never clipped)."""
    heard = mix_at_snr(melody_stream(np.random.default_rng(1), 10.0), sounds["door"], 4 * SAMPLE_RATE, 6.0)
    return (0.9 * heard / np.abs(heard).max()).astype(np.float32)


def test_dense_landmarks_find_a_noisy_sound_under_music_that_onset_landmarks_miss(db, sounds):
    """A slam has no tones: its onset landmarks drown in music; the loudest cells of its bursts do not."""
    index = load_index(db)
    at_frames = 4 * SAMPLE_RATE / FINGERPRINT.hop

    def found(rules):
        return [m for m in match_waveform(index, slam_in_music(sounds), rules) if m.reference.label == "door"
                and abs(m.offset_frames - at_frames) <= 2]

    assert not found(MATCH)
    assert [m.dense for m in found(DENSE)] == [True]


def test_dense_landmarks_leave_other_music_and_noise_alone(db):
    index = load_index(db)
    rng = np.random.default_rng(5)
    for unrelated in (melody_stream(rng, 30.0), noise_stream(rng, 20.0, color="pink"),
                      slam(np.random.default_rng(99))):  # another door: other noise
        assert match_waveform(index, unrelated, DENSE) == []


def test_match_lists_each_sound_once(db, sounds, tmp_path, capsys):
    """Two recordings of one bell match the same ring: one line, the better one."""
    noise = noise_stream(np.random.default_rng(6), 4.0, color="pink")
    ring = write_wav(tmp_path / "ring.wav", np.clip(mix_at_snr(noise, sounds["bell"], SAMPLE_RATE, 12.0), -1, 1))
    assert len(match_waveform(load_index(db), load_audio_16k_mono(ring))) == 2  # both recordings of the bell
    assert fingerprint.main(["match", str(ring), "--db", str(db), "--json"]) == 0
    matches = json.loads(capsys.readouterr().out)["matches"]
    assert [m["label"] for m in matches] == ["bell"]
    assert matches[0]["offset_s"] == pytest.approx(1.0, abs=2 * FINGERPRINT.frame_seconds)


def test_a_sound_that_began_before_the_clip_starts_at_0_s_and_ends_where_it_does(tmp_path, capsys):
    """match and listen.py agree on a clip that begins 0.5 s into a jingle: at 0.00 s, never before, and
    its end event where the jingle ends, with the SNR of its start."""
    import listen

    tune = jingle(np.random.default_rng(40), notes=12)
    root = tmp_path / "sounds"
    write_wav(root / "tune" / "tune.wav", tune)
    db = tmp_path / "fingerprints.sqlite"
    assert fingerprint.main(["add", str(root), "--db", str(db)]) == 0
    late = tune[SAMPLE_RATE // 2:]
    noise = noise_stream(np.random.default_rng(6), len(late) / SAMPLE_RATE + 2.0, color="pink")
    clip = write_wav(tmp_path / "late.wav", np.clip(mix_at_snr(noise, late, 0, 12.0), -1, 1))
    capsys.readouterr()
    assert fingerprint.main(["match", str(clip), "--db", str(db), "--json"]) == 0
    assert [(m["label"], m["offset_s"]) for m in json.loads(capsys.readouterr().out)["matches"]] == [("tune", 0.0)]
    assert listen.main(["--file", str(clip), "--fingerprints", str(db)]) == 0
    start, end = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (start["event"], start["offset_s"], end["event"]) == ("start", 0.0, "end")
    assert end["offset_s"] == pytest.approx(len(late) / SAMPLE_RATE, abs=2 * FINGERPRINT.frame_seconds)
    assert end["duration_s"] == end["offset_s"]


@pytest.mark.parametrize("snr_db", [12.0, 0.0, -6.0])
def test_a_match_says_how_loud_the_sound_was_against_what_played_before_it(db, sounds, snr_db):
    """Where the matcher listens (125 Hz-4 kHz): pink noise has half its power below 30 Hz."""
    from scipy.signal import butter, sosfiltfilt

    index = load_index(db)
    noise = noise_stream(np.random.default_rng(7), 6.0, color="pink")
    at, bell = 2 * SAMPLE_RATE, sounds["bell"]
    heard = mix_at_snr(noise, bell, at, snr_db)
    band = butter(8, [125, 4000], "bandpass", fs=SAMPLE_RATE, output="sos")
    added, under = sosfiltfilt(band, heard - noise)[at:at + len(bell)], sosfiltfilt(band, noise)[at:at + len(bell)]
    in_band_db = 10 * np.log10(np.mean(added ** 2) / np.mean(under ** 2))
    (match,) = matching.each_sound_once(match_waveform(index, heard, MATCH))
    assert match.snr_db == pytest.approx(in_band_db, abs=2.0)


def test_listen_dense_hears_the_slam_under_music_with_its_snr(db, sounds, tmp_path, capsys):
    """listen.py --fingerprints --dense streams as a listener does: the slam under music is an event,
    with its SNR; without --dense it is not; and --dense means nothing without --fingerprints."""
    import listen

    path = write_wav(tmp_path / "game.wav", slam_in_music(sounds))
    for flags, expected in (([], []), (["--dense"], [("start", "door"), ("end", "door")])):
        assert listen.main(["--file", str(path), "--fingerprints", str(db)] + flags) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(e["event"], e["label"]) for e in events] == expected
    assert abs(events[0]["offset_s"] - 4.0) <= 2 * FINGERPRINT.frame_seconds
    assert 0.0 < events[0]["snr_db"] < 15.0  # 6 dB full band; in band, see the test above
    with pytest.raises(SystemExit):
        listen.main(["--file", str(path), "--custom", "--dense"])
    assert "--dense only applies with --fingerprints" in capsys.readouterr().err


def test_the_end_of_a_long_sound_keeps_the_snr_of_its_start(tmp_path):
    """A 6 s tune: when it ends, the second before it is no longer in the listener's 4 s of history."""
    rng = np.random.default_rng(41)
    tune = np.concatenate([jingle(rng, notes=12), jingle(rng, notes=12)])
    root = tmp_path / "sounds"
    write_wav(root / "tune" / "tune.wav", tune)
    db = tmp_path / "fingerprints.sqlite"
    assert fingerprint.main(["add", str(root), "--db", str(db)]) == 0
    heard = np.clip(mix_at_snr(noise_stream(np.random.default_rng(7), 12.0, color="pink"), tune, 3 * SAMPLE_RATE, 6.0), -1, 1)
    listener = fingerprint_listener.FingerprintListener(load_index(db))
    events = [e for at in range(0, len(heard), SAMPLE_RATE // 10) for e in listener.push(heard[at:at + SAMPLE_RATE // 10])]
    assert len(tune) / SAMPLE_RATE > MATCH.stream_history_seconds
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[0]["snr_db"] is not None and events[1]["snr_db"] == pytest.approx(events[0]["snr_db"], abs=1.0)
