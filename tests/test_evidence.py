"""evidence: the ring buffer that holds recent audio, across its wrap-around. Pure numpy, milliseconds."""

import numpy as np

from evidence import RingBuffer


def test_ring_buffer_returns_the_stream_samples_it_still_holds():
    stream = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    ring, at = RingBuffer(1000), 0
    for size in np.random.default_rng(1).integers(1, 1500, 40):
        ring.push(stream[at:at + size])
        at = min(at + size, len(stream))
        np.testing.assert_array_equal(ring.get(at - 700, at), stream[max(0, at - 700):at])
        np.testing.assert_array_equal(ring.get(0, at), stream[max(0, at - 1000):at])  # older samples are gone
        if at == len(stream):
            break
    assert len(ring.get(at - 10, at + 50)) == 10  # nothing past what was heard


def test_not_a_pressed_while_the_event_is_on_moves_that_events_clip_once_written(tmp_path):
    """The press names the label's latest event: its clip, written a second after the event ends, is the one
    handed over, not the label's clip before it (a real ring, maybe)."""
    from evidence import EvidenceRecorder

    recorder, claimed, second = EvidenceRecorder(tmp_path / "evidence"), [], 16000
    recorder.on_claimed = claimed.append
    noise = (0.1 * np.random.default_rng(2).standard_normal(20 * second)).astype(np.float32)
    recorder.push(noise[:3 * second])
    first = {"event": "start", "label": "doorbell", "method": "yamnet", "offset_s": 1.0}
    recorder.on_event(first)
    recorder.on_event({"event": "end", "label": "doorbell", "method": "yamnet", "offset_s": 2.0})
    recorder.push(noise[3 * second:6 * second])  # the first clip is written
    assert recorder.claim_last("doorbell") == (first["id"], tmp_path / "evidence" / first["evidence"])
    second_event = {"event": "start", "label": "doorbell", "method": "yamnet", "offset_s": 6.5}
    recorder.on_event(second_event)
    recorder.push(noise[6 * second:8 * second])
    assert recorder.claim_last("doorbell") == (second_event["id"], None)  # still on: claimed for later
    assert recorder.claim_last("doorbell") == (None, None)  # a second press claims nothing more
    recorder.on_event({"event": "end", "label": "doorbell", "method": "yamnet", "offset_s": 8.0})
    assert claimed == []
    recorder.push(noise[8 * second:10 * second])
    assert claimed == [tmp_path / "evidence" / second_event["evidence"]] and claimed[0].is_file()


def test_a_clip_that_cannot_be_written_is_one_line_and_the_recorder_goes_on(tmp_path):
    from evidence import EvidenceRecorder

    lines = []
    recorder = EvidenceRecorder(tmp_path / "evidence", log=lines.append)
    recorder.push(np.zeros(3 * 16000, np.float32))
    recorder.on_event({"event": "start", "label": "bell", "method": "yamnet", "offset_s": 1.0})
    recorder.on_event({"event": "end", "label": "bell", "method": "yamnet", "offset_s": 1.5})
    (tmp_path / "evidence").rename(tmp_path / "gone")
    (tmp_path / "evidence").write_text("a file where the folder was")
    recorder.push(np.zeros(2 * 16000, np.float32))
    assert len(lines) == 1 and lines[0].startswith("evidence: could not write")


def test_clips_past_the_age_limit_go_while_nothing_fires(tmp_path):
    import os
    import time

    from evidence import EvidenceRecorder

    folder = tmp_path / "evidence"
    folder.mkdir()
    old, fresh = folder / "old.flac", folder / "fresh.flac"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    recorder = EvidenceRecorder(folder, max_days=1.0, prune_every_s=2.0)
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))  # aged after the recorder started: no clip is written after
    recorder.push(np.zeros(16000, np.float32))
    assert old.exists()
    recorder.push(np.zeros(16000, np.float32))  # 2 s heard: time to look again
    assert not old.exists() and fresh.exists()
