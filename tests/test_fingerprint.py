"""fingerprint.py: landmarks, matching replays under music and noise, the SQLite store, the CLI.
Generated sounds (tests/synth_sounds.py) and real FSDD recordings; no TensorFlow; seconds."""

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import resample_poly

import fingerprint
import fingerprint_params
import fingerprint_store
import matching
from audio_util import load_audio_16k_mono
from conftest import PROJECT_DIR, write_wav
from fingerprint_listener import FingerprintListener, load_index
from fingerprint_params import FINGERPRINT
from fingerprint_store import FingerprintStore
from landmarks import SEGMENT_FRAMES, LandmarkExtractor, QuerySpectrum, is_plain, landmarks
from params import SAMPLE_RATE
from synth_sounds import beeps, chime, in_a_room, jingle, melody_stream, mix_at_snr, noise_stream

FRAME_S = FINGERPRINT.frame_seconds
SPEAKERS = ("george", "jackson", "lucas")


@pytest.fixture(scope="module")
def sounds():
    """The generated sounds to register: a chiptune jingle and a doorbell chime (the third, a spoken digit, is FSDD)."""
    rng = np.random.default_rng(8)
    return {"jingle": jingle(rng, notes=9), "chime": chime(rng)}


@pytest.fixture(scope="module")
def sound_tree(tmp_path_factory, sounds, fsdd_dir):
    """sounds/<label>/... as a user lays it out, with metadata for the jingle."""
    root = tmp_path_factory.mktemp("fp") / "sounds"
    write_wav(root / "mario_dies" / "death.wav", sounds["jingle"])
    (root / "mario_dies" / "meta.json").write_text(json.dumps({"game": "Super Mario", "cooldown": 5}))
    # the chime as a 44.1 kHz float file: registration resamples like everything else
    write_wav(root / "doorbell" / "ding_dong.wav", resample_poly(sounds["chime"], 441, 160), sr=44100, subtype="FLOAT")
    write_wav(root / "seven" / "seven.wav", load_audio_16k_mono(fsdd_dir / "7_george_3.wav"), sr=SAMPLE_RATE)
    return root


@pytest.fixture(scope="module")
def db(sound_tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "fingerprints.sqlite"
    assert fingerprint.main(["add", str(sound_tree), "--db", str(path)]) == 0
    return path


def place(background: np.ndarray, sound: np.ndarray, at_s: float, snr_db: float, gain: float = 1.0) -> np.ndarray:
    return np.clip(mix_at_snr(background, sound, round(at_s * SAMPLE_RATE), snr_db) * gain, -1, 1)


# --- landmarks --------------------------------------------------------------------------------------

def test_landmarks_do_not_depend_on_how_the_stream_is_chunked(sounds):
    stream = place(melody_stream(np.random.default_rng(1), 6.0), sounds["jingle"], 1.3, 0.0)
    whole = landmarks(stream)
    extractor, pieces, i = LandmarkExtractor(), [], 0
    for size in np.random.default_rng(2).integers(1, 4000, 200):
        pieces.append(extractor.push(stream[i:i + size]))
        i += size
    assert i >= len(stream)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), whole[0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), whole[1])


def test_silence_and_steady_hum_give_no_landmarks():
    assert len(landmarks(np.zeros(3 * SAMPLE_RATE, np.float32))[0]) == 0
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    hum = (0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    assert len(landmarks(hum)[0]) < 10  # only its start


# --- matching files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("label,background,snr_db,gain", [
    ("mario_dies", "music", -3.0, 0.3),
    ("mario_dies", "noise", -3.0, 2.0),  # clipped
    ("doorbell", "noise", -3.0, 0.5),
    ("seven", "noise", 0.0, 1.0),
])
def test_a_replay_under_music_or_noise_is_found_at_its_offset(db, sounds, fsdd_dir, tmp_path, label, background, snr_db, gain, capsys):
    rng = np.random.default_rng(len(label) * 10 + len(background))  # fixed per case
    bed = melody_stream(rng, 8.0) if background == "music" else noise_stream(rng, 8.0, color="pink")
    sound = {"mario_dies": sounds["jingle"], "doorbell": sounds["chime"],
             "seven": load_audio_16k_mono(fsdd_dir / "7_george_3.wav")}[label]
    at_s = 2.345  # not on the 16 ms frame grid
    clip = write_wav(tmp_path / "replay.wav", resample_poly(place(bed, sound, at_s, snr_db, gain), 3, 1), sr=48000)
    assert fingerprint.main(["match", str(clip), "--db", str(db), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["label"] for m in result["matches"]] == [label], result
    assert abs(result["matches"][0]["offset_s"] - at_s) <= 2 * FRAME_S


@pytest.mark.parametrize("shift", [0, 60, 123, 190])  # samples past the 16 ms frame grid
def test_a_replay_anywhere_between_two_frames_is_found(db, sounds, fsdd_dir, shift):
    """Peaks at onsets are where timing matters most: a sound starting a recording (its reference) and the
    same sound starting anywhere inside a frame of a stream must still agree, for tones and for speech."""
    index = load_index(db)
    for label, sound in [("mario_dies", sounds["jingle"]), ("doorbell", sounds["chime"]),
                         ("seven", load_audio_16k_mono(fsdd_dir / "7_george_3.wav"))]:
        stream = np.zeros(5 * SAMPLE_RATE, np.float32)
        at = SAMPLE_RATE + shift
        stream[at:at + len(sound)] += sound
        matches = matching.match_waveform(index, stream)
        assert [m.reference.label for m in matches] == [label]
        assert abs(matches[0].offset_frames - at / FINGERPRINT.hop) <= 1


def test_a_few_notes_of_a_registered_jingle_are_not_the_jingle(db, sounds):
    """Game music shares notes with its jingles: a fragment (its first two notes, or three from the middle)
    agrees many times at one offset, but only in one stretch of the reference; a match needs most of it."""
    index = load_index(db)
    jingle = sounds["jingle"]
    jingle_id = next(r.sound_id for r in index.references.values() if r.label == "mario_dies")
    for fragment in (jingle[:len(jingle) // 5], jingle[len(jingle) // 3:len(jingle) * 2 // 3]):
        for bed in (np.zeros(6 * SAMPLE_RATE, np.float32), melody_stream(np.random.default_rng(3), 6.0)):
            stream = place(bed, fragment, 2.0, 3.0) if bed.any() else place(bed + 1e-4, fragment, 2.0, 40.0)
            sound_ids, offsets, _, numbers = index.lookup(*landmarks(stream, FINGERPRINT.for_query))
            votes = {sound: len(found) for sound, _, found in matching.best_offsets(sound_ids, offsets, numbers)}
            assert votes[jingle_id] >= fingerprint_params.MATCH.min_votes  # many agreeing landmarks ...
            assert matching.match_waveform(index, stream) == []  # ... but not a match


def test_a_match_starts_where_the_sound_does(db, sounds):
    """Another melody sharing all but the opening (two segments, 0.5 s) of a registered jingle agrees segment
    by segment, but not at its start: no match, though it would be one without that rule. A replay whose
    first segment alone is lost (a first note drowned by a word, or blurred by a room) is still found."""
    from dataclasses import replace

    index = load_index(db)
    hashes, frames = landmarks(sounds["jingle"])  # exactly the reference's landmarks
    query_frames = int(frames.max()) + 200
    whole = matching.match_landmarks(index, hashes, frames + 100, query_frames)
    assert [m.reference.label for m in whole] == ["mario_dies"] and whole[0].onset_votes >= fingerprint_params.MATCH.min_onset_votes
    first_segment_lost = frames >= SEGMENT_FRAMES
    assert (~first_segment_lost).sum() >= fingerprint_params.MATCH.min_segment_landmarks
    found = matching.match_landmarks(index, hashes[first_segment_lost], frames[first_segment_lost] + 100, query_frames)
    assert [m.reference.label for m in found] == ["mario_dies"]  # an onset of one segment would refuse it
    after_opening = frames >= fingerprint_params.MATCH.onset_segments * SEGMENT_FRAMES
    rest = hashes[after_opening], frames[after_opening] + 100
    without_rule = replace(fingerprint_params.MATCH, min_onset_votes=0)
    assert [m.reference.label for m in matching.match_landmarks(index, *rest, query_frames, without_rule)] == ["mario_dies"]
    assert matching.match_landmarks(index, *rest, query_frames) == []


def spectrum_of(waveform: np.ndarray) -> QuerySpectrum:
    extractor = LandmarkExtractor(FINGERPRINT.for_query, keep_level_frames=None)
    extractor.push(waveform)
    return extractor.spectrum


def test_a_match_is_verified_on_the_query_spectrogram(db, sounds):
    """Landmarks can agree where the sound is not (a melody of the same notes at the same tempo): a match
    also needs the reference's own peaks to stand out in the query where it puts them. A replay under
    louder music shows them; the music alone, or the replay at another offset, does not."""
    index = load_index(db)
    reference = next(r for r in index.references.values() if r.label == "mario_dies")
    music = melody_stream(np.random.default_rng(21), 8.0)
    at, last = round(2.0 / FRAME_S), int(reference.peaks[:, 0].max())
    share, checked = spectrum_of(place(music, sounds["jingle"], 2.0, -3.0)).verify(reference, at, 0, last)
    assert checked >= 20 and share >= fingerprint_params.MATCH.min_verified_share
    for waveform, offset in ((music, at), (place(music, sounds["jingle"], 2.0, -3.0), at + 20)):
        share, checked = spectrum_of(waveform).verify(reference, offset, 0, last)
        assert checked >= 20 and share < 0.5
    # the reference's exact landmarks, as if heard over the music: they agree, but the music lacks its peaks
    hashes, frames = landmarks(sounds["jingle"])
    query_frames = len(music) // FINGERPRINT.hop
    assert [m.reference.label for m in matching.match_landmarks(index, hashes, frames + at, query_frames)] == ["mario_dies"]
    assert matching.match_landmarks(index, hashes, frames + at, query_frames, spectrum=spectrum_of(music)) == []
    # a live stream is verified the same way, on the levels it keeps
    matcher, step, matches = matching.StreamMatcher(index), round(0.1 * SAMPLE_RATE), []
    replay = place(music, sounds["jingle"], 2.0, -3.0)
    for start in range(0, len(replay), step):
        matches += matcher.push(replay[start:start + step])
    assert matches and {m.reference.label for m in matches} == {"mario_dies"}
    rules = fingerprint_params.MATCH
    assert all(m.verified >= rules.min_verified_share and m.checked_peaks >= rules.min_verified_peaks for m in matches)


def test_a_jingle_heard_across_a_room_is_verified(db, sounds):
    """In a room a note's echo rings on after it stops: its end is judged over 4 frames (one window, 64 ms),
    not 2, so that a jingle heard across a tiled hall under music still shows its peaks ending."""
    reference = next(r for r in load_index(db).references.values() if r.label == "mario_dies")
    rng = np.random.default_rng(3)
    music = melody_stream(rng, 6.0)
    heard = place(music, in_a_room(rng, sounds["jingle"], 0.8, 0.0), 1.0, 0.0)
    share, checked = spectrum_of(heard).verify(reference, round(1.0 / FRAME_S), 0, int(reference.peaks[:, 0].max()))
    assert checked >= 20 and share >= fingerprint_params.MATCH.min_verified_share  # 0.73 with the end due in 2 frames


def test_a_beep_pattern_is_not_a_held_tone_of_its_pitch(tmp_path):
    """A plain reference's peaks are few and on one pitch: a note of that pitch held in other music,
    wavering by a few dB in step with the beeps, shows them starting but not stopping dead, as a beep does.
    In a room a beep's echo rings on after it stops, so its end is judged over 0.1 s, not 2 frames."""
    rng = np.random.default_rng(5)
    pitch_hz, on_s, off_s, count = 2640.0, 0.15, 0.1, 6
    t = np.arange(round(count * (on_s + off_s) * SAMPLE_RATE)) / SAMPLE_RATE
    on = (t % (on_s + off_s)) < on_s
    tone = np.sin(2 * np.pi * pitch_hz * t).astype(np.float32)
    pattern = 0.5 * tone * on
    with FingerprintStore(tmp_path / "fp.sqlite", create=True) as store:
        assert fingerprint_store.register(store, "oven", fingerprint_store.LabelInfo({}), "oven/done.wav", pattern)[0] == "added"
        (reference,) = store.load_index().references.values()
    assert is_plain(reference)
    at_s, last = 1.0, int(reference.peaks[:, 0].max())
    at = round(at_s / FRAME_S)
    bed = noise_stream(rng, 4.0, color="pink")
    share, checked = spectrum_of(place(bed, pattern, at_s, 0.0)).verify(reference, at, 0, last)
    assert checked >= 10 and share >= fingerprint_params.MATCH.min_verified_share
    held = np.zeros(4 * SAMPLE_RATE, np.float32)
    held[at * FINGERPRINT.hop:at * FINGERPRINT.hop + len(t)] = 0.3 * tone * np.where(on, 1.0, 0.6)  # wavers by 4.4 dB
    held += 0.01 * bed
    share, checked = spectrum_of(held).verify(reference, at, 0, last)
    assert checked >= 10 and share < 0.6  # ends judged like starts (3 dB) would give 0.75
    in_living_room = place(bed, in_a_room(rng, pattern, 0.6, 3.0), at_s, 0.0)
    share, checked = spectrum_of(in_living_room).verify(reference, at, 0, last)
    assert checked >= 10 and share >= fingerprint_params.MATCH.min_verified_share  # 0.38 with a drop due in 2 frames


def bell(notes_hz, partials: int = 5) -> np.ndarray:
    """Struck notes 0.5 s apart, each with `partials` harmonics ringing off."""
    t = np.arange(round(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
    out = np.zeros(round((0.5 * len(notes_hz) + 0.6) * SAMPLE_RATE))
    for i, f in enumerate(notes_hz):
        at = round(0.5 * i * SAMPLE_RATE)
        out[at:at + len(t)] += sum(np.sin(2 * np.pi * f * k * t) * np.exp(-3 * k * t) / k for k in range(1, partials + 1))
    return (0.4 * out / np.abs(out).max()).astype(np.float32)


def test_adding_a_plain_sound_with_few_landmarks_says_it_needs_to_be_heard_clearly(tmp_path, capsys):
    """A two-note bell has few landmarks, and a plain sound needs plain_min_votes of them: a user should
    know at once that it will be missed under loud noise, not find out from a missed ring."""
    write_wav(tmp_path / "sounds" / "ding_dong" / "bell.wav", bell((660, 550)))
    write_wav(tmp_path / "sounds" / "three_notes" / "bell.wav", bell((660, 550, 660)))
    assert fingerprint.main(["add", str(tmp_path / "sounds"), "--db", str(tmp_path / "fp.sqlite")]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["added ding_dong/bell.wav"].endswith(
        f"{fingerprint_params.MATCH.plain_min_votes} of them must agree, so it is recognised only when heard clearly")
    assert "plain" not in lines["added three_notes/bell.wav"]


def test_how_much_agreement_a_match_needs_depends_on_the_reference(db):
    """A plain reference (a chime: a few strikes) needs more votes than a melody; a spoken word (its
    landmarks at its onset, two segments) one confirmed segment, a longer sound several."""
    rules = fingerprint_params.MATCH
    references = {r.label: r for r in load_index(db).references.values()}
    assert matching.votes_needed(references["doorbell"], 0) == rules.plain_min_votes > rules.min_votes
    assert matching.votes_needed(references["mario_dies"], 0) == rules.min_votes
    assert matching.votes_needed(references["mario_dies"], 10_000) == rules.min_score * 10_000
    needed = [matching.segments_needed(total) for total in range(1, 9)]
    assert needed == [1, 1, 3, 3, 4, 4, 4, 4]


def test_a_query_keeps_the_landmarks_of_a_reference(sounds, fsdd_dir):
    """A reference keeps only its louder peaks and fewer pairs; a query (denser) of the same clean sound
    holds nearly all of them, so that what a reference has is what a replay can show."""
    assert FINGERPRINT.level_gate_db < FINGERPRINT.for_query.level_gate_db
    for sound in (sounds["jingle"], sounds["chime"], load_audio_16k_mono(fsdd_dir / "7_george_3.wav")):
        reference = set(zip(*(x.tolist() for x in landmarks(sound))))
        query = set(zip(*(x.tolist() for x in landmarks(sound, FINGERPRINT.for_query))))
        assert len(query) >= len(reference) and len(reference & query) >= 0.9 * len(reference)


def test_votes_never_exceed_the_landmarks_of_the_reference(db, sounds):
    """A landmark whose peaks straddle a frame boundary can show up in two adjacent frames of a query, both
    within the offset tolerance: each of the reference's landmarks still counts once."""
    index = load_index(db)
    hashes, frames = landmarks(sounds["jingle"])
    twice = np.concatenate([frames + 100, frames + 101])  # every landmark, one frame apart
    (match,) = matching.match_landmarks(index, np.concatenate([hashes, hashes]), twice, int(frames.max()) + 200)
    assert match.reference.label == "mario_dies" and match.offset_frames in (100, 101)
    assert 0.8 * match.reference.landmark_count <= match.votes <= match.reference.landmark_count < 2 * len(hashes)


def test_match_reports_every_time_a_sound_plays(db, sounds, tmp_path, capsys):
    rng = np.random.default_rng(12)
    onsets = (1.5, 9.0)
    stream = noise_stream(rng, 14.0, color="pink")
    for onset in onsets:
        stream = place(stream, sounds["jingle"], onset, 0.0)
    clip = write_wav(tmp_path / "twice.wav", stream)
    assert fingerprint.main(["match", str(clip), "--db", str(db), "--json"]) == 0
    matches = json.loads(capsys.readouterr().out)["matches"]
    assert [m["label"] for m in matches] == ["mario_dies", "mario_dies"], matches
    for match, onset in zip(matches, onsets):
        assert abs(match["offset_s"] - onset) <= 2 * FRAME_S


def test_unrelated_audio_matches_nothing(db, fsdd_dir, tmp_path, capsys):
    rng = np.random.default_rng(77)
    others = [load_audio_16k_mono(fsdd_dir / f"{d}_{s}_{n}.wav") for d in (1, 4, 7) for s in ("jackson", "theo") for n in (0, 1)]
    speech = np.concatenate([np.concatenate([o, np.zeros(4000, np.float32)]) for o in others])
    unrelated = {"music.wav": melody_stream(rng, 40.0), "speech.wav": speech,
                 "noise.wav": noise_stream(rng, 20.0, color="white") + noise_stream(rng, 20.0, color="brown"),
                 "beeps.wav": np.concatenate([beeps(rng) for _ in range(10)] + [chime(rng) for _ in range(5)])}
    for name, waveform in unrelated.items():
        write_wav(tmp_path / name, np.clip(waveform, -1, 1))
    assert fingerprint.main(["match", str(tmp_path), "--db", str(db)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{tmp_path / name}: no match" for name in sorted(unrelated)]


# --- streams: what listen.py runs ---------------------------------------------------------------------------

def test_stream_reports_each_replay_once_within_1_5_s_with_metadata(db, sounds):
    rng = np.random.default_rng(5)
    onsets = (3.111, 12.5)
    stream = melody_stream(rng, 20.0)
    for onset in onsets:
        stream = place(stream, sounds["jingle"], onset, -3.0)
    listener = FingerprintListener(load_index(db))
    events, step = [], round(0.1 * SAMPLE_RATE)
    for start in range(0, len(stream), step):
        for event in listener.push(stream[start:start + step]):
            events.append((listener.matcher.seconds_done, event))
    events += [(None, e) for e in listener.finish()]
    assert [(e["event"], e["label"]) for _, e in events] == [("start", "mario_dies"), ("end", "mario_dies")] * 2
    jingle_s = len(sounds["jingle"]) / SAMPLE_RATE
    for (heard_at, start), (_, end), onset in zip(events[::2], events[1::2], onsets):
        assert abs(start["offset_s"] - onset) <= 2 * FRAME_S
        assert heard_at - onset <= 1.5, "onset to event"
        assert start["method"] == "fingerprint" and start["reference"] == "mario_dies/death.wav"
        assert start["metadata"] == end["metadata"] == {"game": "Super Mario"}
        assert end["offset_s"] == pytest.approx(start["offset_s"] + jingle_s, abs=0.02)


def test_a_file_that_loses_the_sound_to_noise_matches_as_the_listener_hears_it(tmp_path):
    """The stream decides as it hears; a file match must too, not judge the whole sound by its drowned end."""
    sound = jingle(np.random.default_rng(3), notes=10)
    write_wav(tmp_path / "sounds" / "tune" / "tune.wav", sound)
    assert fingerprint.main(["add", str(tmp_path / "sounds"), "--db", str(tmp_path / "db.sqlite")]) == 0
    index = load_index(tmp_path / "db.sqlite")
    query = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), sound[:round(0.45 * len(sound))],
                            0.5 * noise_stream(np.random.default_rng(0), 4.0, color="white")]).astype(np.float32)
    listener = FingerprintListener(index)
    heard = [e for i in range(0, len(query), 1600) for e in listener.push(query[i:i + 1600])] + listener.finish()
    starts = [e["offset_s"] for e in heard if e["event"] == "start"]
    assert len(starts) == 1 and abs(starts[0] - 0.5) <= 2 * FRAME_S, heard
    found = matching.match_waveform(index, query)
    assert [m.reference.name for m in found] == ["tune/tune.wav"]
    assert abs(found[0].offset_frames * FRAME_S - 0.5) <= 2 * FRAME_S


def test_a_long_recording_matches_a_plain_sound_as_the_listener_hears_it(tmp_path):
    """A bell under music that the listener recognises from its first strikes (38 votes, 34 needed by then)
    is found by `match` in a 2-minute file too: not refused for having fewer votes than the whole bell
    would need (48), nor judged only at segment ends spread over the whole file instead of the bell."""
    bell = chime(np.random.default_rng(2))
    write_wav(tmp_path / "sounds" / "doorbell" / "ring.wav", bell)
    assert fingerprint.main(["add", str(tmp_path / "sounds"), "--db", str(tmp_path / "db.sqlite")]) == 0
    index = load_index(tmp_path / "db.sqlite")
    (reference,) = index.references.values()
    assert is_plain(reference)
    rng = np.random.default_rng(19)
    music = melody_stream(rng, 120.0) + 0.18 * noise_stream(rng, 120.0, color="pink")
    query = place(music, bell, 8.6, -3.0).astype(np.float32)
    listener = FingerprintListener(index)
    heard = [e for i in range(0, len(query), 1600) for e in listener.push(query[i:i + 1600])] + listener.finish()
    starts = [e["offset_s"] for e in heard if e["event"] == "start"]
    assert len(starts) == 1 and abs(starts[0] - 8.6) <= 2 * FRAME_S, heard
    found = matching.match_waveform(index, query)
    assert [round(m.offset_frames * FRAME_S, 3) for m in found] == starts


def test_label_cooldown_from_meta_json_silences_a_quick_repeat(db, sounds):
    stream = np.zeros(16 * SAMPLE_RATE, np.float32)
    gap = len(sounds["jingle"]) + round(1.0 * SAMPLE_RATE)  # 1 s apart: it ends inside the 5 s cooldown
    for at in (SAMPLE_RATE, SAMPLE_RATE + gap):
        stream[at:at + len(sounds["jingle"])] += sounds["jingle"]
    listener = FingerprintListener(load_index(db))
    events = [e for i in range(0, len(stream), 1600) for e in listener.push(stream[i:i + 1600])] + listener.finish()
    assert [e["event"] for e in events] == ["start", "end"]


def test_a_repeat_that_begins_inside_the_cooldown_stays_silent_when_it_plays_on_past_it(db, sounds):
    jingle = sounds["jingle"]
    assert len(jingle) > SAMPLE_RATE
    stream = np.zeros(12 * SAMPLE_RATE + 2 * len(jingle), np.float32)
    first = SAMPLE_RATE
    second = first + len(jingle) + round(4.5 * SAMPLE_RATE)  # 0.5 s before the 5 s cooldown ends
    for at in (first, second):
        stream[at:at + len(jingle)] += jingle
    listener = FingerprintListener(load_index(db))
    events = [e for i in range(0, len(stream), 1600) for e in listener.push(stream[i:i + 1600])] + listener.finish()
    assert [(e["event"], round(e["offset_s"])) for e in events if e["event"] == "start"] == [("start", 1)], events


def test_the_cooldown_does_not_hide_a_better_heard_sound_after_a_weak_match(db, sounds):
    """A weak match (here a replay under loud noise, as a false match would be) starts the 5 s cooldown;
    the clear sound 1 s after it has several times its votes: not a repeat to silence, so it is reported.
    A repeat heard as well as the first stays silent (test above)."""
    jingle = sounds["jingle"]
    first, second = SAMPLE_RATE, 2 * SAMPLE_RATE + len(jingle)
    stream = place(noise_stream(np.random.default_rng(4), 4.0 + 2 * len(jingle) / SAMPLE_RATE, color="pink"),
                   jingle, first / SAMPLE_RATE, -3.0)
    stream[second:] *= 0.02  # the noise fades: the second replay is clear
    stream[second:second + len(jingle)] += jingle
    listener = FingerprintListener(load_index(db))
    events = [e for i in range(0, len(stream), 1600) for e in listener.push(stream[i:i + 1600])] + listener.finish()
    starts = [e for e in events if e["event"] == "start"]
    assert [round(e["offset_s"]) for e in starts] == [round(first / SAMPLE_RATE), round(second / SAMPLE_RATE)], events
    assert starts[1]["votes"] >= FingerprintListener.OUTVOTE_FACTOR * starts[0]["votes"]


# --- the database -----------------------------------------------------------------------------------------

def test_list_shows_labels_metadata_and_sounds(db, capsys):
    assert fingerprint.main(["list", "--db", str(db), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["labels"]["mario_dies"] == {"metadata": {"game": "Super Mario"}, "cooldown": 5.0}
    assert [s["name"] for s in listing["sounds"]] == ["doorbell/ding_dong.wav", "mario_dies/death.wav", "seven/seven.wav"]


def test_re_adding_the_same_content_is_a_no_op(db, sound_tree, capsys):
    before = db.read_bytes()
    assert fingerprint.main(["add", str(sound_tree), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.count("unchanged ") == 3 and "0 added, 3 unchanged, 0 skipped" in out
    assert db.read_bytes() == before


def test_adding_a_file_with_label_keeps_the_labels_metadata_and_cooldown(tmp_path, sound_tree, sounds, capsys):
    db = tmp_path / "db.sqlite"
    assert fingerprint.main(["add", str(sound_tree), "--db", str(db)]) == 0
    more = write_wav(tmp_path / "other_take.wav", sounds["jingle"][::-1].copy())
    for path in (more, sound_tree / "mario_dies" / "death.wav"):  # a new sound, and one already there
        assert fingerprint.main(["add", str(path), "--label", "mario_dies", "--db", str(db)]) == 0
    capsys.readouterr()
    assert fingerprint.main(["list", "--db", str(db), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["labels"]["mario_dies"] == {"metadata": {"game": "Super Mario"}, "cooldown": 5.0}
    assert "mario_dies/other_take.wav" in [s["name"] for s in listing["sounds"]]


def test_add_refuses_what_it_cannot_fingerprint_and_goes_on(tmp_path, sounds, capsys):
    root = tmp_path / "sounds"
    write_wav(root / "silent" / "nothing.wav", np.zeros(SAMPLE_RATE, np.float32))
    write_wav(root / "blip" / "blip.wav", 0.5 * np.sin(2 * np.pi * 1000 * np.arange(1600) / SAMPLE_RATE))
    (root / "broken").mkdir()
    (root / "broken" / "broken.wav").write_bytes(b"RIFF not really")
    write_wav(root / "copy" / "same.wav", sounds["jingle"])
    write_wav(root / "jingle" / "original.wav", sounds["jingle"])
    write_wav(root / "loose.wav", sounds["jingle"])
    db = tmp_path / "db.sqlite"
    assert fingerprint.main(["add", str(root), "--db", str(db)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert f"skipped {root / 'loose.wav'}: not in a label folder; put it in {root}/<label>/ or use --label" in lines
    assert "skipped silent/nothing.wav: silent (nothing above -80 dBFS): record it again, closer" in lines, err
    assert any(line.startswith("skipped blip/blip.wav: too short, quiet or plain to fingerprint: ") for line in lines), err
    assert any(line.startswith(f"skipped {root / 'broken' / 'broken.wav'}: not a readable audio file") for line in lines), err
    # copy/ comes before jingle/: the second copy of the same audio is the one refused
    assert "skipped jingle/original.wav: the same audio is already registered as copy/same.wav" in lines
    assert "1 added, 0 unchanged, 5 skipped" in out
    assert [s["name"] for s in FingerprintStore(db).sounds()] == ["copy/same.wav"]
    # nothing usable at all: no empty database is left for listen.py to open
    other = tmp_path / "other.sqlite"
    assert fingerprint.main(["add", str(root / "silent"), "--label", "silent", "--db", str(other)]) == 1
    assert capsys.readouterr().out == f"0 added, 0 unchanged, 1 skipped; nothing to store, so {other} was not made\n"
    assert not other.exists()
    assert fingerprint.main(["add", str(root / "silent"), "--label", "silent", "--db", str(db)]) == 1
    assert f"{db} holds 1 sound(s)" in capsys.readouterr().out  # an existing database stays, of course


def test_a_changed_recording_replaces_the_old_one_and_remove_takes_it_out(tmp_path, sounds, capsys):
    root, db = tmp_path / "sounds", tmp_path / "db.sqlite"
    write_wav(root / "bell" / "bell.wav", sounds["chime"])
    assert fingerprint.main(["add", str(root), "--db", str(db)]) == 0
    assert "added bell/bell.wav: 1.7 s" in capsys.readouterr().out
    write_wav(root / "bell" / "bell.wav", sounds["jingle"])
    assert fingerprint.main(["add", str(root), "--db", str(db)]) == 0
    assert "added bell/bell.wav: replaces its earlier version; 3.7 s" in capsys.readouterr().out
    with FingerprintStore(db) as store:
        (only,) = store.sounds()
        assert only["landmark_count"] == len(landmarks(load_audio_16k_mono(root / "bell" / "bell.wav"))[0])
    assert fingerprint.main(["remove", "bell/bell.wav", "--db", str(db)]) == 0
    assert fingerprint.main(["remove", "bell", "--db", str(db)]) == 1
    assert capsys.readouterr().err == f"error: no label or sound 'bell' in {db} (labels: none; see python fingerprint.py list)\n"


def test_a_crash_in_the_middle_of_adding_leaves_no_half_registered_sound(tmp_path, sounds, sound_tree):
    """A real crash: the process dies (os._exit) right after writing a sound's row, before COMMIT."""
    db = tmp_path / "db.sqlite"
    assert fingerprint.main(["add", str(sound_tree / "doorbell"), "--label", "doorbell", "--db", str(db)]) == 0
    before = FingerprintStore(db).sounds()
    crash = ("import os, sys, fingerprint, fingerprint_store\n"
             "execute = fingerprint_store.FingerprintStore._execute\n"
             "def dying(self, sql, args=()):\n"
             "    rows = execute(self, sql, args)\n"
             "    if sql.startswith('INSERT INTO sounds'):\n"
             "        os._exit(9)\n"
             "    return rows\n"
             "fingerprint_store.FingerprintStore._execute = dying\n"
             f"sys.exit(fingerprint.main(['add', {str(sound_tree)!r}, '--db', {str(db)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", crash], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    with FingerprintStore(db) as store:
        assert store.sounds() == before
        assert list(store.labels()) == ["doorbell"]
        assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_ctrl_c_while_adding_rolls_back_the_sound_in_progress(tmp_path, sound_tree, monkeypatch, capsys):
    db = tmp_path / "db.sqlite"
    execute = FingerprintStore._execute

    def interrupted(self, sql, args=()):
        rows = execute(self, sql, args)
        if sql.startswith("INSERT INTO sounds") and "seven" in args[1]:
            raise KeyboardInterrupt
        return rows

    monkeypatch.setattr(FingerprintStore, "_execute", interrupted)
    assert fingerprint.main(["add", str(sound_tree), "--db", str(db)]) == 130
    assert f"interrupted: {db} holds 2 sound(s), each whole" in capsys.readouterr().err
    monkeypatch.undo()
    with FingerprintStore(db) as store:
        assert [s["name"] for s in store.sounds()] == ["doorbell/ding_dong.wav", "mario_dies/death.wav"]
        assert "seven" not in store.labels()


@pytest.mark.parametrize("case", ["missing", "not sqlite", "foreign sqlite", "damaged", "folder", "empty"])
@pytest.mark.parametrize("command", ["list", "match", "remove"])
def test_a_bad_database_is_one_line_and_exit_1(case, command, db, tmp_path, capsys):
    path = tmp_path / "fingerprints.sqlite"
    if case == "not sqlite":  # e.g. a WAV given as --db
        path.write_bytes(write_wav(tmp_path / "a.wav", np.zeros(1000, np.float32)).read_bytes())
    elif case == "foreign sqlite":
        sqlite3.connect(path).execute("CREATE TABLE songs (title TEXT)").connection.commit()
    elif case == "damaged":
        data = bytearray(db.read_bytes())
        data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # the second half zeroed
        path.write_bytes(bytes(data))
    elif case == "folder":
        path.mkdir()
    elif case == "empty":
        path.touch()
    argv = {"list": ["list"], "match": ["match", str(path)], "remove": ["remove", "x"]}[command]
    assert fingerprint.main(argv + ["--db", str(path)]) == 1
    err = capsys.readouterr().err
    expected = {"missing": f"error: no fingerprint database at {path}: make one with python fingerprint.py add sounds/",
                "not sqlite": f"error: {path}: not a fingerprint database (file is not a database)",
                "foreign sqlite": f"error: {path}: an SQLite database, but not one of audio2mqtt's fingerprints",
                "damaged": f"error: {path}: damaged fingerprint database",
                "folder": f"error: {path} is a folder, not a fingerprint database",
                "empty": f"error: {path}: an empty file (0 bytes), not a fingerprint database: delete it"}[case]
    if case == "damaged" and command in ("list", "remove"):
        expected = f"error: {path}: "  # may read fine, or hit a zeroed page
        if err == "":
            return
    assert err.startswith(expected) and err.count("\n") == 1, err


def test_a_database_of_an_older_fingerprint_format_asks_to_add_the_sounds_again(db, tmp_path, capsys):
    old = tmp_path / "old.sqlite"
    old.write_bytes(db.read_bytes())
    with sqlite3.connect(old) as conn:
        conn.execute("UPDATE info SET value = '1' WHERE key = 'version'")
    for argv in (["list"], ["match", str(old)]):
        assert fingerprint.main(argv + ["--db", str(old)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {old}: made by another version of fingerprint.py (format 1, this one reads "
                              f"{fingerprint_store.DB_VERSION}): delete it and add your sounds again") and err.count("\n") == 1, err
    with pytest.raises(fingerprint_params.FingerprintError, match="add your sounds again"):
        load_index(old)  # what listen.py --fingerprints calls


def test_a_database_needs_the_reference_landmark_settings_not_the_query_ones(db, tmp_path, capsys):
    """A database holds references' landmarks, so it must have been made with today's reference settings;
    the query's are made afresh on every stream, and may change between versions without re-adding."""
    def copy_with(change):
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.sqlite"
        path.write_bytes(db.read_bytes())
        with sqlite3.connect(path) as conn:
            (params,) = conn.execute("SELECT value FROM info WHERE key = 'params'").fetchone()
            conn.execute("UPDATE info SET value = ? WHERE key = 'params'", (json.dumps(change(json.loads(params))),))
        return path

    assert load_index(copy_with(lambda p: dict(p, query_fanout=99))).labels == ["doorbell", "mario_dies", "seven"]
    other = copy_with(lambda p: dict(p, fanout=p["fanout"] + 1))
    assert fingerprint.main(["list", "--db", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {other}: made by another version of fingerprint.py (other landmark settings): "
                          "delete it and add your sounds again") and err.count("\n") == 1, err


def test_bad_meta_json_skips_its_label_with_one_line(tmp_path, sounds, capsys):
    root = tmp_path / "sounds"
    write_wav(root / "bell" / "bell.wav", sounds["chime"])
    (root / "bell" / "meta.json").write_text('{"room": "hall", "cooldown": "soon"}')
    write_wav(root / "gong" / "gong.wav", sounds["chime"][::-1].copy())
    (root / "gong" / "meta.json").write_text('{"cooldown": NaN}')
    write_wav(root / "tune" / "tune.wav", sounds["jingle"])
    (root / "tune" / "meta.yaml").write_text("game: Zelda\n")
    assert fingerprint.main(["add", str(root), "--db", str(tmp_path / "db.sqlite")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"skipped label bell: {root / 'bell' / 'meta.json'}: cooldown must be a number of seconds, 0 or more (got 'soon')",
                   f"skipped label gong: {root / 'gong' / 'meta.json'}: cooldown must be a number of seconds, 0 or more (got nan)",
                   f"skipped label tune: {root / 'tune'}: meta.yaml is not read (PyYAML is not a dependency): write it as meta.json"]


def test_an_empty_sounds_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "sounds").mkdir()
    assert fingerprint.main(["add", str(tmp_path / "sounds"), "--db", str(tmp_path / "db.sqlite")]) == 1
    assert capsys.readouterr().err.startswith(f"error: nothing to add in {tmp_path / 'sounds'}: ")
    assert not (tmp_path / "db.sqlite").exists()


def test_cli_usage_errors(tmp_path, capsys):
    for argv, message in [(["add", str(tmp_path / "none")], "does not exist"),
                          (["add", str(write_wav(tmp_path / "a.wav", np.zeros(10, np.float32)))], "give its label with --label"),
                          (["match", "x.wav", "--min-votes", "0"], "--min-votes must be at least 1")]:
        with pytest.raises(SystemExit) as exit_info:
            fingerprint.main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
