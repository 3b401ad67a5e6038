"""caffe-layers-make-list: class folders -> train.txt, val.txt, labels.txt (trees in tmp_path)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from caffe_layers.sources.image_list import SampleList
from caffe_layers.tools import make_list


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded by the list maker")


def make_tree(root: Path, sizes: dict, ext: str = ".jpg") -> None:
    for name, size in sizes.items():
        for i in range(size):
            touch(root / name / f"{i:03d}{ext}")


def lines(path: Path) -> list:
    return [line.rsplit(" ", 1) for line in path.read_text().splitlines()]


def run(argv, capsys) -> tuple:
    status = make_list.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_lists_labels_and_ignored_files(tmp_path, capsys):
    root = tmp_path / "photos"
    make_tree(root, {"dog": 10, "cat": 5, "bird": 1})
    touch(root / "cat" / "nested" / "deep.PNG")       # any depth, extension case-insensitive
    touch(root / "cat" / "notes.txt")                  # not an image
    touch(root / "dog" / ".hidden.jpg")                # hidden
    touch(root / ".thumbnails" / "x.jpg")              # hidden folder: not a class
    touch(root / "readme.md")                          # a file beside the class folders
    status, out, err = run([root, "--val-fraction", "0.2"], capsys)
    assert status == 0, err
    assert (root / "labels.txt").read_text() == "0 bird\n1 cat\n2 dog\n"
    train, val = lines(root / "train.txt"), lines(root / "val.txt")
    everything = sorted(p for p, _ in train + val)
    expected = sorted([f"dog/{i:03d}.jpg" for i in range(10)] + [f"cat/{i:03d}.jpg" for i in
                      range(5)] + ["cat/nested/deep.PNG", "bird/000.jpg"])
    assert everything == expected
    assert not {p for p, _ in train} & {p for p, _ in val}
    for path, label in train + val:
        assert label == str(["bird", "cat", "dog"].index(path.split("/")[0]))
    per_class = collections.Counter(p.split("/")[0] for p, _ in val)
    assert per_class == {"dog": 2, "cat": 1}  # round(6 * 0.2) = 1; bird keeps its only image
    assert "1 non-image files ignored" in out
    assert 'root_folder: "' + str(root) + '/"' in out


def test_the_lists_are_what_the_layer_reads(tmp_path, capsys):
    root = tmp_path / "with space"
    make_tree(root, {"a b": 3, "c": 3})
    assert run([root, "--val-fraction", "0.34"], capsys)[0] == 0
    samples = SampleList.read(str(root / "train.txt"), str(root) + "/")
    assert len(samples) == 4
    for i in range(len(samples)):
        assert Path(samples.path(i)).is_file()
        assert samples.labels[i, 0] == (0 if "/a b/" in samples.path(i) else 1)


def test_split_is_stratified(tmp_path, capsys):
    root = tmp_path / "data"
    make_tree(root, {"w": 50, "x": 50, "y": 20, "z": 40})
    assert run([root, "--val-fraction", "0.3", "--seed", "3"], capsys)[0] == 0
    val = collections.Counter(p.split("/")[0] for p, _ in lines(root / "val.txt"))
    train = collections.Counter(p.split("/")[0] for p, _ in lines(root / "train.txt"))
    assert val == {"w": 15, "x": 15, "y": 6, "z": 12}
    assert train == {"w": 35, "x": 35, "y": 14, "z": 28}


def test_same_seed_same_split_other_seed_other_split(tmp_path, capsys):
    root = tmp_path / "data"
    make_tree(root, {"a": 30, "b": 30})
    results = []
    for seed in (7, 7, 8):
        out_dir = tmp_path / f"out{len(results)}"
        assert run([root, "--seed", seed, "--out-dir", out_dir], capsys)[0] == 0
        results.append(((out_dir / "train.txt").read_text(), (out_dir / "val.txt").read_text()))
    assert results[0] == results[1]
    assert set(results[0][1].splitlines()) != set(results[2][1].splitlines())


def test_lists_are_shuffled_unless_asked_not_to(tmp_path, capsys):
    root = tmp_path / "data"
    make_tree(root, {"a": 20, "b": 20})
    assert run([root, "--val-fraction", "0"], capsys)[0] == 0
    shuffled = lines(root / "train.txt")
    assert len(shuffled) == 40
    assert (root / "val.txt").read_text() == ""
    assert shuffled != sorted(shuffled, key=lambda s: (int(s[1]), s[0]))
    assert run([root, "--val-fraction", "0", "--no-shuffle"], capsys)[0] == 0
    ordered = lines(root / "train.txt")
    assert ordered == sorted(ordered, key=lambda s: (int(s[1]), s[0]))
    assert sorted(ordered) == sorted(shuffled)


def test_out_dir_is_created(tmp_path, capsys):
    root = tmp_path / "data"
    make_tree(root, {"a": 2, "b": 2})
    out_dir = tmp_path / "lists" / "v1"
    assert run([root, "--out-dir", out_dir], capsys)[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["labels.txt", "train.txt", "val.txt"]
    assert not (root / "train.txt").exists()


def test_every_image_extension_is_found(tmp_path, capsys):
    root = tmp_path / "data"
    for ext in make_list.IMAGE_EXTENSIONS:
        touch(root / "a" / f"lower{ext}")
        touch(root / "a" / f"upper{ext.upper()}")
    touch(root / "a" / "archive.zip")
    touch(root / "a" / "jpg")
    assert run([root, "--val-fraction", "0"], capsys)[0] == 0
    assert len(lines(root / "train.txt")) == 2 * len(make_list.IMAGE_EXTENSIONS)


def test_read_labels_round_trip(tmp_path):
    make_list.write_labels(str(tmp_path / "labels.txt"), ["cat", "dog house", "émeu"])
    assert make_list.read_labels(str(tmp_path / "labels.txt")) == ["cat", "dog house", "émeu"]


# --- bad input: one clear line on stderr, exit status != 0, no traceback -------------------------

def assert_error(status: int, err: str, code: int, *parts: str) -> None:
    assert status == code
    assert err.startswith("caffe-layers-make-list: error: ") or "usage:" in err
    assert "Traceback" not in err
    for part in parts:
        assert part in err


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, _, err = run([tmp_path / "empty"], capsys)
    assert_error(status, err, 1, "is empty", "one subfolder per class")


def test_images_without_class_folders(tmp_path, capsys):
    for i in range(3):
        touch(tmp_path / "flat" / f"{i}.jpg")
    status, _, err = run([tmp_path / "flat"], capsys)
    assert_error(status, err, 1, "no class subfolders", "3 images lie directly in it")


def test_class_folder_without_images(tmp_path, capsys):
    make_tree(tmp_path / "data", {"a": 3})
    touch(tmp_path / "data" / "b" / "notes.txt")
    status, _, err = run([tmp_path / "data"], capsys)
    assert_error(status, err, 1, "without images", ": b ")


def test_missing_folder(tmp_path, capsys):
    status, _, err = run([tmp_path / "nowhere"], capsys)
    assert_error(status, err, 2, "does not exist")


def test_a_file_instead_of_a_folder(tmp_path, capsys):
    touch(tmp_path / "file.jpg")
    status, _, err = run([tmp_path / "file.jpg"], capsys)
    assert_error(status, err, 2, "is a file, not a folder")


@pytest.mark.parametrize("fraction", ["1", "-0.1", "half"])
def test_bad_val_fraction(tmp_path, capsys, fraction):
    make_tree(tmp_path / "data", {"a": 3})
    status, _, err = run([tmp_path / "data", "--val-fraction", fraction], capsys)
    assert_error(status, err, 2, "argument --val-fraction", repr(fraction))


def test_help(capsys):
    status, out, _ = run(["--help"], capsys)
    assert status == 0
    assert out.startswith("usage: caffe-layers-make-list")
    assert "--val-fraction" in out
    assert "example:" in out


def test_a_bar_of_images_per_class(tmp_path, capsys):
    root = tmp_path / "photos"
    make_tree(root, {"circle": 10, "cross": 5, "square": 1})
    status, out, _ = run([root, "--val-fraction", "0.2", "-q"], capsys)
    assert status == 0
    lines = out.splitlines()
    start = lines.index("images per class:")
    assert lines[start + 1:start + 4] == [
        "  0 circle  " + "#" * 30 + "  10  (8 train, 2 val)",
        "  1 cross   " + "#" * 15 + " " * 15 + "   5  (4 train, 1 val)",
        "  2 square  " + "###" + " " * 27 + "   1  (1 train, 0 val)",
    ]
    assert lines[-1] == (f"check the images: caffe-layers-check-list {root}/train.txt "
                         f"--root-folder {root}/")
