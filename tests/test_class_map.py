"""class_map: YAMNet's bundled class map and custom class name files. TF-free."""

import pytest

from class_map import ClassMapError, find_class_indices, format_class_names, load_yamnet_class_names, read_class_names
from params import BUNDLED_YAMNET_DIR, YAMNET


def test_bundled_class_map_has_all_audioset_classes_in_order():
    names = load_yamnet_class_names(BUNDLED_YAMNET_DIR / "assets" / "yamnet_class_map.csv")
    assert len(names) == YAMNET.num_classes
    assert names[0] == "Speech"
    assert names[494] == "Silence"
    assert "Smoke detector, smoke alarm" in names  # names with commas survive CSV quoting


def test_find_class_indices_is_case_insensitive_and_hints_on_unknown():
    names = ["Speech", "Doorbell", "Smoke detector, smoke alarm"]
    assert find_class_indices(names, ["doorbell", " Smoke detector, smoke alarm "]) == [1, 2]
    with pytest.raises(ClassMapError, match="unknown class name 'smoke'.*did you mean: Smoke detector"):
        find_class_indices(names, ["smoke"])


def test_class_names_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "class_names.txt"
    path.write_text(format_class_names(["doorbell", "background"]))
    assert read_class_names(path) == ["doorbell", "background"]
    path.write_text("\n\n")
    with pytest.raises(ClassMapError, match="lists no class names"):
        read_class_names(path)
    with pytest.raises(ClassMapError, match="cannot read"):
        read_class_names(tmp_path / "missing.txt")


def test_foreign_csv_is_rejected(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ClassMapError, match="not a YAMNet class map"):
        load_yamnet_class_names(path)
