"""The fingerprint database and registering sounds: one SQLite file (standard library), changed in
transactions, so a crash or Ctrl+C never leaves a half-registered sound (FingerprintStore); a label
folder's meta.json (LabelInfo, read_label_info); a folder of sounds as labels (label_groups); and
fingerprinting one recording into the store (register). The layer above matching.py: it imports
fingerprint_params.py, landmarks.py, matching.py (a store loads as a FingerprintIndex), audio_util.py,
atomic_write.py and params.py, never the listener or a CLI; it returns outcomes and messages and prints
nothing.
"""

import contextlib
import datetime
import hashlib
import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_util import first_line, walk_audio_files
from fingerprint_params import FINGERPRINT, MATCH, FingerprintError, MatchDefaults, reference_settings
from landmarks import Reference, is_plain, reference_landmarks
from matching import FingerprintIndex, votes_needed
from params import DEFAULT_MODELS_DIR

DB_FORMAT = "audio2mqtt-fingerprints"
DB_VERSION = 5                      # 1: onset landmarks; 2: before denser queries; 3: weak peaks in references;
                                    # 4: before dense landmarks; refused
DEFAULT_DB = DEFAULT_MODELS_DIR / "fingerprints.sqlite"
META_FILENAME = "meta.json"         # optional, in sounds/<label>/: fields sent with every event of the label
YAML_META_FILENAMES = ("meta.yaml", "meta.yml")  # refused with a hint: PyYAML is not a dependency
COOLDOWN_KEY = "cooldown"           # in meta.json: seconds the label stays quiet after an event ends


# --- the database: one SQLite file ------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE labels (
    label TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,          -- JSON object sent with every event of the label
    cooldown REAL                    -- seconds; NULL: listen.py's --cooldown
);
CREATE TABLE sounds (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL REFERENCES labels(label),
    name TEXT NOT NULL UNIQUE,       -- <label>/<path inside the label folder>
    audio_sha256 TEXT NOT NULL UNIQUE,  -- of the decoded 16 kHz samples: the same sound is never stored twice
    duration_s REAL NOT NULL,
    landmark_count INTEGER NOT NULL,
    hashes BLOB NOT NULL,            -- uint32 little-endian, one per landmark
    frames BLOB NOT NULL,            -- uint16 little-endian: frame of each landmark's first peak
    dense_hashes BLOB NOT NULL,      -- the same for its dense landmarks (dense_landmarks.py): uint32 ...
    dense_frames BLOB NOT NULL,      -- ... and uint16
    added TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LabelInfo:
    """What a label's meta.json said: fields for its events, and its own cooldown (None: the default)."""

    metadata: dict
    cooldown: float | None = None


class FingerprintStore:
    """An open fingerprint database. Every change is one transaction: all of it lands, or none."""

    def __init__(self, path, create: bool = False):
        if str(path).strip() == "":  # Path("") is "."
            raise FingerprintError("no database file given (an empty path): e.g. --db models/fingerprints.sqlite")
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise FingerprintError(f"no fingerprint database at {self.path}: make one with "
                                       f"python fingerprint.py add sounds/ --db {self.path}")
            self._create(self.path)
        if self.path.is_dir():
            raise FingerprintError(f"{self.path} is a folder, not a fingerprint database")
        if self.path.stat().st_size == 0:  # SQLite would take it for an empty database of someone else's
            raise FingerprintError(f"{self.path}: an empty file (0 bytes), not a fingerprint database: delete it "
                                   f"and add your sounds (python fingerprint.py add sounds/ --db {self.path})")
        try:
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        except sqlite3.Error as e:
            raise FingerprintError(f"cannot open fingerprint database {self.path} ({e})") from e
        self._check()

    @staticmethod
    def _create(path: Path) -> None:
        """A new, empty database, made under a temporary name and renamed: never half-made."""
        from atomic_write import atomic_output

        try:
            with atomic_output(path) as tmp:
                conn = sqlite3.connect(tmp)
                with conn:
                    conn.executescript(_SCHEMA)
                    conn.executemany("INSERT INTO info VALUES (?, ?)", [
                        ("format", DB_FORMAT), ("version", str(DB_VERSION)),
                        ("params", json.dumps(FINGERPRINT.reference_settings(), sort_keys=True))])
                conn.close()
        except (OSError, sqlite3.Error) as e:
            raise FingerprintError(f"cannot create fingerprint database {path} ({first_line(e)})") from e

    def _check(self) -> None:
        """Refuse anything that is not a database of ours, made with today's landmark settings."""
        try:
            info = dict(self.conn.execute("SELECT key, value FROM info").fetchall())
        except sqlite3.DatabaseError as e:
            self.conn.close()
            if "no such table" in str(e):
                raise FingerprintError(f"{self.path}: an SQLite database, but not one of audio2mqtt's fingerprints") from e
            raise FingerprintError(f"{self.path}: not a fingerprint database ({e})") from e
        if info.get("format") != DB_FORMAT:
            self.conn.close()
            raise FingerprintError(f"{self.path}: an SQLite database, but not one of audio2mqtt's fingerprints")
        try:
            params = json.loads(info.get("params") or "{}")
        except ValueError:
            params = {}
        same_settings = isinstance(params, dict) and FINGERPRINT.reference_settings() == reference_settings(params)
        if info.get("version") != str(DB_VERSION) or not same_settings:
            self.conn.close()
            why = (f"format {info.get('version')}, this one reads {DB_VERSION}" if info.get("version") != str(DB_VERSION)
                   else "other landmark settings")
            raise FingerprintError(f"{self.path}: made by another version of fingerprint.py ({why}): delete it and "
                                   f"add your sounds again (python fingerprint.py add sounds/ --db {self.path})")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN ... COMMIT, or ROLLBACK on any exception, Ctrl+C included. A crash (power, kill -9)
        in between is rolled back by SQLite's journal the next time the file is opened."""
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self._execute("COMMIT")

    def _execute(self, sql: str, args=()) -> list:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise FingerprintError(f"{self.path}: damaged fingerprint database ({e}); delete it and run add again") from e

    # --- reading ---

    def sounds(self) -> list[dict]:
        """[{id, label, name, duration_s, landmark_count, added}] ordered by label and name."""
        rows = self._execute("SELECT id, label, name, duration_s, landmark_count, added FROM sounds ORDER BY label, name")
        return [dict(zip(("id", "label", "name", "duration_s", "landmark_count", "added"), row)) for row in rows]

    def labels(self) -> dict[str, LabelInfo]:
        rows = self._execute("SELECT label, metadata, cooldown FROM labels ORDER BY label")
        try:
            return {label: LabelInfo(json.loads(metadata), cooldown) for label, metadata, cooldown in rows}
        except json.JSONDecodeError as e:
            raise FingerprintError(f"{self.path}: damaged fingerprint database (label metadata: {e})") from e

    def has_sound(self, name: str) -> bool:
        return bool(self._execute("SELECT 1 FROM sounds WHERE name = ?", (name,)))

    def find_audio(self, audio_sha256: str) -> tuple[str, str] | None:
        rows = self._execute("SELECT name, label FROM sounds WHERE audio_sha256 = ?", (audio_sha256,))
        return rows[0] if rows else None

    def load_index(self, rules: MatchDefaults = MATCH) -> FingerprintIndex:
        """Everything, in memory, ready to match."""
        references, hashes, dense = [], {}, {}
        for sound_id, label, name, duration, count, hash_blob, frame_blob, dense_hashes, dense_frames in self._execute(
                "SELECT id, label, name, duration_s, landmark_count, hashes, frames, dense_hashes, dense_frames FROM sounds"):
            h = np.frombuffer(hash_blob, dtype="<u4")
            f = np.frombuffer(frame_blob, dtype="<u2")
            dense[sound_id] = np.frombuffer(dense_hashes, dtype="<u4"), np.frombuffer(dense_frames, dtype="<u2")
            if len(h) != count or len(f) != count or len(dense[sound_id][0]) != len(dense[sound_id][1]):
                raise FingerprintError(f"{self.path}: damaged fingerprint database (sound {name!r} has "
                                       f"{len(h)} hashes for {count} landmarks); delete it and run add again")
            reference, hashes[sound_id] = Reference.of(sound_id, label, name, duration, h, f)
            references.append(reference)
        return FingerprintIndex(references, hashes, FINGERPRINT, self.labels(), dense)

    # --- writing: each call is one transaction ---

    def add_sound(self, label: str, info: LabelInfo, name: str, audio_sha256: str, duration_s: float,
                  hashes: np.ndarray, frames: np.ndarray, dense: tuple[np.ndarray, np.ndarray]) -> None:
        """Register one recording (replacing an older version of the same name), its landmarks and dense
        landmarks (hashes, frames), and its label's metadata."""
        with self.transaction():
            self._set_label(label, info)
            self._execute("DELETE FROM sounds WHERE name = ?", (name,))
            self._execute(
                "INSERT INTO sounds (label, name, audio_sha256, duration_s, landmark_count, hashes, frames, "
                "dense_hashes, dense_frames, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (label, name, audio_sha256, duration_s, len(hashes), np.asarray(hashes, "<u4").tobytes(),
                 np.asarray(frames, "<u2").tobytes(), np.asarray(dense[0], "<u4").tobytes(),
                 np.asarray(dense[1], "<u2").tobytes(),
                 datetime.datetime.now().astimezone().isoformat(timespec="seconds")))

    def set_label(self, label: str, info: LabelInfo) -> bool:
        """Update a registered label's metadata; True if it changed."""
        with self.transaction():
            return self._set_label(label, info)

    def _set_label(self, label: str, info: LabelInfo) -> bool:
        metadata = json.dumps(info.metadata, sort_keys=True)
        if self._execute("SELECT 1 FROM labels WHERE label = ? AND metadata = ? AND cooldown IS ?",
                         (label, metadata, info.cooldown)):
            return False
        self._execute("INSERT INTO labels VALUES (?, ?, ?) ON CONFLICT (label) DO UPDATE SET "
                      "metadata = excluded.metadata, cooldown = excluded.cooldown", (label, metadata, info.cooldown))
        return True

    def remove(self, what: str) -> list[str]:
        """Remove a label (all its sounds) or one sound by name; returns the names removed."""
        with self.transaction():
            names = [n for (n,) in self._execute("SELECT name FROM sounds WHERE label = ? ORDER BY name", (what,))]
            if not names:
                names = [n for (n,) in self._execute("SELECT name FROM sounds WHERE name = ?", (what.strip("/"),))]
            if not names:
                known = ", ".join(label for (label,) in self._execute("SELECT label FROM labels ORDER BY label")) or "none"
                raise FingerprintError(f"no label or sound {what!r} in {self.path} (labels: {known}; "
                                       f"see python fingerprint.py list)")
            self._execute(f"DELETE FROM sounds WHERE name IN ({', '.join('?' * len(names))})", names)
            self._execute("DELETE FROM labels WHERE label NOT IN (SELECT label FROM sounds)")
        return names


# --- registering sounds ---------------------------------------------------------------------------

def read_label_info(folder: Path) -> LabelInfo:
    """The optional meta.json of a label folder: an object of fields for its events, `cooldown` apart."""
    path = folder / META_FILENAME
    if any((folder / name).is_file() for name in YAML_META_FILENAMES):
        if not path.is_file():
            raise FingerprintError(f"{folder}: meta.yaml is not read (PyYAML is not a dependency): write it as {META_FILENAME}")
    if not path.is_file():
        return LabelInfo({})
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise FingerprintError(f"cannot read {path} ({first_line(e)})") from e
    except json.JSONDecodeError as e:
        raise FingerprintError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(fields, dict):
        raise FingerprintError(f'{path} must hold one JSON object, e.g. {{"game": "Super Mario", "cooldown": 10}}')
    cooldown = fields.pop(COOLDOWN_KEY, None)
    if cooldown is not None and (isinstance(cooldown, bool) or not isinstance(cooldown, (int, float))
                                 or not math.isfinite(cooldown) or cooldown < 0):
        raise FingerprintError(f"{path}: cooldown must be a number of seconds, 0 or more (got {cooldown!r})")
    return LabelInfo(fields, None if cooldown is None else float(cooldown))


def has_label_info(folder: Path) -> bool:
    """Whether a folder holds a meta.json (or a meta.yaml that read_label_info refuses)."""
    return any((folder / name).is_file() for name in (META_FILENAME, *YAML_META_FILENAMES))


def label_groups(root: Path, label: str | None) -> tuple[list[tuple[str, Path, list[Path]]], list[Path]]:
    """[(label, its folder or file, its audio files)] and the audio files that have no label.

    With `label`, everything under `root` (a file or a folder) is that label; otherwise each
    sub-folder of `root` is one label, named after it.
    """
    if label is not None:
        files, _ = walk_audio_files(root)
        return [(label, root, files)], []
    groups, unlabelled = [], []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            groups.append((child.name, child, walk_audio_files(child)[0]))
        elif walk_audio_files(child)[0]:
            unlabelled.append(child)
    return groups, unlabelled


def audio_identity(waveform: np.ndarray) -> str:
    """sha256 of the decoded samples: the same sound in another file or format is still the same."""
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype=np.float32).tobytes()).hexdigest()


def register(store: FingerprintStore, label: str, info: LabelInfo, name: str, waveform: np.ndarray,
             rules: MatchDefaults = MATCH) -> tuple[str, str]:
    """Fingerprint and store one recording; returns (outcome, message), outcome 'added', 'unchanged' or 'skipped'."""
    duration = len(waveform) / FINGERPRINT.sample_rate
    if duration > rules.max_reference_seconds:
        return "skipped", f"{duration:.0f} s is longer than {rules.max_reference_seconds:.0f} s: cut out the part to recognise"
    identity = audio_identity(waveform)
    known = store.find_audio(identity)
    if known and known[0] == name:
        return "unchanged", "already registered"
    if known:
        return "skipped", f"the same audio is already registered as {known[0]}"
    if not np.any(np.abs(waveform) > 10.0 ** (FINGERPRINT.level_floor_db / 20.0)):
        return "skipped", f"silent (nothing above {FINGERPRINT.level_floor_db:.0f} dBFS): record it again, closer"
    (hashes, frames), dense = reference_landmarks(waveform)
    if len(hashes) < rules.min_landmarks_to_register:
        return "skipped", (f"too short, quiet or plain to fingerprint: {len(hashes)} landmarks found, "
                           f"{rules.min_landmarks_to_register} needed (record it longer or closer, or use a YAMNet class)")
    replaced = "replaces its earlier version; " if store.has_sound(name) else ""
    store.add_sound(label, info, name, identity, duration, hashes, frames, dense)
    reference, _ = Reference.of(0, label, name, duration, hashes, frames)
    needed = votes_needed(reference, 0, rules)
    if is_plain(reference, rules) and len(hashes) < 2 * needed:
        return "added", (f"{replaced}{duration:.1f} s, {len(hashes)} landmarks; a plain sound (a few strikes, or one "
                         f"or two pitches): {needed:.0f} of them must agree, so it is recognised only when heard clearly")
    return "added", f"{replaced}{duration:.1f} s, {len(hashes)} landmarks"
