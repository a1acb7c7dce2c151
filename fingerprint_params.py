"""The settings of exact-sound matching, and its one error: how landmarks are made (FingerprintParams,
FINGERPRINT: stored in every database, which is refused when they differ) and the decision rules of
matching in files and streams (MatchDefaults, MATCH). The bottom layer of the fingerprint modules, as
params.py is of the project: it imports only params.py and dense_landmarks.py (whose settings a
database stores beside these), and every fingerprint module (landmarks, matching, fingerprint_store,
fingerprint_listener, the fingerprint.py CLI) imports it.
"""

from dataclasses import asdict, dataclass, replace

from dense_landmarks import DENSE
from params import SAMPLE_RATE


@dataclass(frozen=True)
class FingerprintParams:
    """How landmarks are made. Stored in every database: one made with other values is refused,
    since its hashes would never meet the stream's."""

    sample_rate: int = SAMPLE_RATE     # Hz, mono: audio_util's one loading function gives this
    n_fft: int = 1024                  # 64 ms windows -> 15.6 Hz bins: speech harmonics resolved ...
    bins: int = 256                    # ... of which the first 256 (0-4 kHz: what an 8 kHz recording still has)
    hop: int = 256                     # 16 ms between spectrogram frames
    min_bin: int = 8                   # below 125 Hz (mains hum, rumble) no peaks are taken
    level_floor_db: float = -80.0      # dBFS: quieter spectrogram cells count as silence
    # A peak is a spectral maximum (a harmonic, a formant, a partial) that stands out from what the
    # same frequencies held just before: above the recent maximum of its +-spread_bins neighbourhood,
    # which fades at mask_release_db_per_s, by rise_db. Steady tones (hum, a held note) give one peak.
    # A maximum of the previous frame that has fallen by rise_db is a peak too (a note or beep ending).
    spread_bins: int = 4
    prominence_db: float = 10.0        # and stands this far above the mean level of its +-prominence_bins
    prominence_bins: int = 8           # (noise has no such peaks; tones, partials and voiced speech do)
    mask_release_db_per_s: float = 120.0  # fast: a beep repeated after a short gap is new again
    rise_db: float = 4.0
    rise_lag_frames: int = 2           # compared with the mask of 2 frames before (see push)
    level_gate_db: float = 25.0        # peaks more than this below the loudest recent bin are ignored ...
    level_release_db_per_s: float = 20.0  # ... where "recent" fades at this rate
    max_peaks_per_frame: int = 5       # the most prominent ones
    # Each peak (anchor) is paired with the first `fanout` later peaks in its target zone (Wang 2003):
    fanout: int = 10
    min_dt_frames: int = 2             # zone: from 2 frames later (not the same onset) ...
    max_dt_frames: int = 62            # ... to 62 frames (1 s) later (6 bits, one spare for look-up's dt+1) ...
    max_df_bins: int = 128             # ... and up to 128 bins (2 kHz) above or below
    # A query (a replay under music or noise) has more peaks than its reference: louder ones of the
    # background can push the reference's out of a frame's top few, or out of an anchor's first partners.
    # So a query keeps more of each: the reference's landmarks are then among its own.
    query_peaks_per_frame: int = 8
    query_fanout: int = 20
    query_level_gate_db: float = 30.0  # and a reference keeps only its louder peaks: weak ones drown in a background

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate  # 0.016

    @property
    def for_query(self) -> "FingerprintParams":
        """The settings a query's landmarks are made with (denser than a reference's)."""
        return replace(self, max_peaks_per_frame=self.query_peaks_per_frame, fanout=self.query_fanout,
                       level_gate_db=self.query_level_gate_db)

    def reference_settings(self) -> dict:
        """The settings a database must have been made with (see reference_settings), dense landmarks' too."""
        return dict(reference_settings(asdict(self)), dense=asdict(DENSE))


def reference_settings(settings: dict) -> dict:
    """Of landmark settings (a FingerprintParams as a dict), the reference's: its landmarks are in the
    database. The query's are left out: a stream's landmarks are made afresh, so those may change."""
    return {k: v for k, v in settings.items() if not k.startswith("query_")}


FINGERPRINT = FingerprintParams()


@dataclass(frozen=True)
class MatchDefaults:
    """Decision rules of matching, in files (`match`) and in streams (listen.py)."""

    # A match: enough landmarks agree at one time offset, and they are spread over the reference's time
    # span, segment by segment: another melody sharing two or three notes with it, or a bell of the same
    # pitch, agrees many times but only in one stretch of it; a replay under loud music loses many
    # landmarks, but all over the reference.
    min_votes: int = 10                  # landmarks agreeing at one offset (a plain reference: at least plain_min_votes) ...
    min_score: float = 0.03              # ... and at least this share of the reference's landmarks heard so far ...
    plain_peak_frames: int = 8           # ... or, for a plain reference, with peaks in this few frames (a chime:
    plain_peak_bins: int = 4             # all its landmarks join the same few strikes) or bins (a beep pattern),
    plain_min_score: float = 0.2         # this share (other melodies have those few notes too);
    plain_min_votes: int = 20            # (a bell or beep of the same pitch agrees by chance more often)
    min_segment_landmarks: int = 3       # a segment heard with fewer landmarks, or fewer than ...
    tail_segment_share: float = 0.2      # ... this share of the reference's fullest segment's, is not counted;
    min_segment_votes: int = 2           # a segment is confirmed by at least this many agreeing landmarks ...
    min_segment_fraction: float = 0.07   # ... and this share of its landmarks heard;
    min_onset_votes: int = 1             # the first 2 segments heard agree too (a spoken word: its first): a match
    onset_segments: int = 2              # starts where the sound does, though a room or a word may blur its first note
                                         # (another melody sharing a stretch of its middle, another voice
                                         # saying the same digit, agree there, not at its start)
    min_covered_share: float = 0.6       # confirmed segments hold this share of the counted landmarks heard so far ...
    min_segments: int = 4                # ... and number this many, or (shorter references) ...
    min_segments_share: float = 0.75     # ... this share of all the reference's counted segments, or one for a
    short_reference_segments: int = 2    # reference of this few (a spoken word: most landmarks at its onset)
    offset_tolerance_frames: int = 1     # votes within +-1 frame (16 ms) of an offset count for it
    # Then the match is verified on the query's spectrogram (QuerySpectrum.verify): votes agree by chance in
    # a melody of the same notes at the same tempo, or a voice of the same pitch, but the reference's own
    # peaks do not all stand out there, starting and ending where the match puts them. A replay's do, even
    # under louder music: a peak's cell stays prominent after its pairs are lost among the background's.
    min_verified_share: float = 0.8      # this share of the reference's peaks heard so far must be there ...
    min_verified_peaks: int = 6          # ... of at least this many checked
    verify_prominence_db: float = 5.0    # there: this far above the mean of its +-prominence_bins (within 1 frame, 1 bin) ...
    verify_change_db: float = 3.0        # ... and this much louder than 2-3 frames before (a start) or, an end, than
    end_drop_frames: int = 4             # ... within this many frames after (64 ms: a room's echo slows the fall);
    plain_end_drop_db: float = 10.0      # a plain reference's end: this much (a beep stops dead; a held tone of
                                         # the same pitch in other music wavers by a few dB) ...
    plain_end_drop_frames: int = 6       # ... within this many frames (0.1 s: in a room, a beep's echo rings on)
    # Or, an option, a match by dense landmarks (dense_landmarks.py: the peaks of noisy sounds, and of
    # sounds under louder music): this many agree at one offset, and this share of those heard so far,
    # segment by segment as above, and verified on the spectrogram to a lower share. Not the default:
    # on generated look-alike jingles it still matches a little more often, and it halves the matching
    # speed (docs/performance.md#exact-sounds-how-well-it-works)
    dense: bool = False
    dense_min_votes: int = 24
    dense_min_score: float = 0.03
    dense_min_verified_share: float = 0.7  # of the reference's (onset) peaks heard, where it has enough of them
    min_landmarks_to_register: int = 30  # fewer: too short, quiet or plain (one steady tone) to recognise
    max_reference_seconds: float = 600.0  # frames are stored in 16 bits (17 min); 10 min is plenty
    stream_history_seconds: float = 4.0  # a live stream's landmarks are kept this long for voting
    stream_grace_seconds: float = 0.5    # a match stays on this long after its reference has ended


MATCH = MatchDefaults()


class FingerprintError(Exception):
    """A database or input that cannot be used; the message is one actionable line."""
