"""The listening loop, TF-free: a source's chunks fed to every listener (YAMNet windows, fingerprints),
each event handed to `emit`. listen.py runs it live; stream_eval.py runs it over a labelled recording,
so both hear a stream the same way.
"""

import numpy as np

from audio_util import rms_dbfs, to_stderr
from detection import EventDetector, StreamFramer
from params import SAMPLE_RATE


class Stop(BaseException):
    """SIGTERM: end like Ctrl+C. A BaseException, like KeyboardInterrupt, because the signal may land
    inside library code that catches Exception: TensorFlow turns one into a TypeError mid-inference."""


def raise_stop(signum, frame):
    raise Stop


class YamnetListener:
    """YAMNet windows -> scores -> events, with the interface of fingerprint_listener.FingerprintListener.
    With `min_level_dbfs`, a quieter window skips YAMNet and scores 0 for every label (the energy gate:
    silence costs no inference); `windows` and `skipped` count them."""

    METHOD = "yamnet"

    def __init__(self, score, detector: EventDetector, framer: StreamFramer, min_level_dbfs: float | None = None):
        self.score, self.detector, self.framer = score, detector, framer
        self.min_level_dbfs = min_level_dbfs
        self.windows = self.skipped = 0

    @property
    def labels(self) -> list[str]:
        """The labels that can fire (as FingerprintListener.labels)."""
        return self.detector.firing_labels

    def push(self, samples) -> list[dict]:
        return self._feed(self.framer.push(samples))

    def flush(self) -> list[dict]:
        """End of stream: the window holding its last samples (see StreamFramer.flush)."""
        return self._feed(self.framer.flush())

    def finish(self) -> list[dict]:
        return [dict(event, method=self.METHOD) for event in self.detector.finish()]

    def _feed(self, windows) -> list[dict]:
        return [dict(event, method=self.METHOD) for start, window in windows
                for event in self.detector.update(start / SAMPLE_RATE, self._scores(window))]

    def _scores(self, window):
        self.windows += 1
        if self.min_level_dbfs is not None and rms_dbfs(window) < self.min_level_dbfs:
            self.skipped += 1
            return np.zeros(len(self.detector.labels), np.float32)
        return self.score(window)


def run(source, listeners: list, emit, check=lambda: None, on_audio=lambda chunk: None, log=to_stderr) -> None:
    """Feed the source to every listener (YamnetListener, FingerprintListener); `emit` each event;
    `check` may raise; `on_audio` gets each chunk after its events. At the end of the stream, or on
    Ctrl+C/SIGTERM, events still on are ended.
    Each event says how much of the stream had been heard when it came (`heard_s`): minus `offset_s`,
    a start event's delay."""
    heard = 0

    def emit_all(events) -> None:
        for event in events:
            event["heard_s"] = round(heard / SAMPLE_RATE, 3)
            emit(event)

    try:
        for chunk in source.chunks:
            heard += len(chunk)
            for listener in listeners:
                emit_all(listener.push(chunk))
            on_audio(chunk)
            check()
        for listener in listeners:
            emit_all(listener.flush())
    except (KeyboardInterrupt, Stop):
        log("stopping")
    for listener in listeners:
        emit_all(listener.finish())
