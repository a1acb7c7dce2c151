"""The exact-sound benchmark's own bookkeeping (bench/fingerprint.py is run by hand; its numbers rest on these)."""

import importlib.util

import numpy as np

from conftest import PROJECT_DIR

spec = importlib.util.spec_from_file_location("bench_fingerprint", PROJECT_DIR / "bench" / "fingerprint.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_replays_do_not_depend_on_which_sounds_were_refused():
    """A matcher that refuses other sounds must be compared on the same replays: a refused sound's draw
    goes to the next registered one, and every other draw is unchanged."""
    everything = {bench.sound_name(k): None for k in range(40)}
    refused = {bench.sound_name(k) for k in (3, 7, 11, 20)}
    some = {name: None for name in everything if name not in refused}
    rng = np.random.default_rng(1)
    all_draws = [bench.replay_name(rng, everything, 40) for _ in range(200)]
    rng = np.random.default_rng(1)
    some_draws = [bench.replay_name(rng, some, 40) for _ in range(200)]
    assert all(b == a for a, b in zip(all_draws, some_draws) if a not in refused)
    assert all(b == bench.sound_name(int(a[-8:-4]) + 1) for a, b in zip(all_draws, some_draws) if a in refused)
    assert any(a in refused for a in all_draws)


def test_dcase_metrics_count_a_match_of_another_sound_as_wrong():
    """sed_eval, each registered sound its own class: the right sound at its onset (within 0.2 s) is a hit;
    another sound there, or any match in the confusers, is a false positive."""
    onset, end = 2.0, 3.5
    hit = {"reference": "jingle/jingle_0000.wav", "offset_s": onset + 0.05}
    other = {"reference": "jingle/jingle_0004.wav", "offset_s": onset + 0.05}
    streamed = [((onset, end, "jingle/jingle_0000.wav"), [hit], 8.0),
                ((onset, end, "chime/chime_0001.wav"), [], 8.0)]
    overall = bench.dcase_metrics(streamed, [], 60.0)["overall"]
    assert (overall["precision"], overall["recall"]) == (1.0, 0.5)
    overall = bench.dcase_metrics(streamed, [other], 60.0)["overall"]
    assert (overall["precision"], overall["recall"]) == (0.5, 0.5)
    late = [((onset, end, "jingle/jingle_0000.wav"), [dict(hit, offset_s=onset + 0.3)], 8.0)]
    assert bench.dcase_metrics(late, [], 60.0)["overall"]["recall"] == 0.0
