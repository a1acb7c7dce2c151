"""record.py: a virtual ALSA microphone through PortAudio (see tests/alsa_microphone.py). TF-free."""

import subprocess
import sys

import numpy as np
import pytest

import record
from alsa_microphone import AlsaMicrophone
from audio_util import load_audio_16k_mono
from conftest import PROJECT_DIR, tone
from params import SAMPLE_RATE


def record_with_microphone(tmp_path, played: np.ndarray, *args) -> tuple[int, str, str]:
    """`record.py` in a subprocess that sees a microphone hearing `played` (16 kHz); returns
    (exit code, stdout, stderr). The virtual microphone has no clock: once the recorder has opened it,
    we end its input, so the recorder reads what was played and then its stream can stop."""
    microphone = AlsaMicrophone(tmp_path)
    process = None
    try:
        microphone.play(played)
        process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "record.py"), *args,
                                    "--device", microphone.name], env=microphone.env, cwd=PROJECT_DIR,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = process.stderr.readline()
        microphone.close()
        out, err = process.communicate(timeout=60)
        return process.returncode, out, first + err
    finally:
        microphone.close()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def test_record_trims_the_silence_around_the_sound(tmp_path):
    beep = tone(1000, 1.0)
    played = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), beep, np.zeros(2 * SAMPLE_RATE, np.float32)])
    out = tmp_path / "sounds" / "beep" / "beep.wav"
    code, out_text, err = record_with_microphone(tmp_path, played, str(out), "--seconds", "3.5")
    assert code == 0, err
    assert "silence trimmed: kept 0.95-2.05 s" in out_text, out_text
    recorded = load_audio_16k_mono(out)
    assert len(recorded) == round(1.1 * SAMPLE_RATE)  # the beep and 50 ms either side
    middle = recorded[round(0.1 * SAMPLE_RATE):round(0.9 * SAMPLE_RATE)]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_record_of_silence_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "quiet.wav"
    code, _, err = record_with_microphone(tmp_path, np.zeros(2 * SAMPLE_RATE, np.float32), str(out), "--seconds", "1")
    assert code == 1
    assert err.splitlines()[-1].startswith("error: device:audio2mqtt_test_mic gave nothing but silence"), err
    assert not out.exists()


def test_record_from_a_missing_device_is_one_line(tmp_path, capsys):
    assert record.main([str(tmp_path / "x.wav"), "--seconds", "1", "--device", "no-such-mic-xyz"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no input device 'no-such-mic-xyz'") and len(err) == 1
