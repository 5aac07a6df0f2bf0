import io

import datasets
import numpy as np
import pytest
from PIL import Image
from synthetic import CLASS_NAMES, synthetic_images, write_hub_dataset

from cifar_hf.commands.train import main as train
from cifar_hf.data import decode as decode_module
from cifar_hf.data import load_cifar
from cifar_hf.data.rgb import to_rgb
from cifar_hf.errors import InputError


def test_hub_layout_folder_loads_with_class_names_and_test_split(tiny_dataset):
    data = load_cifar(str(tiny_dataset), val_size=40, seed=2023)
    assert data.class_names == CLASS_NAMES
    assert len(data.train) == 200 and len(data.validation) == 40 and len(data.test) == 80
    assert data.train.pixels.shape == (200, 32, 32, 3) and data.train.pixels.dtype == np.uint8
    assert np.bincount(data.validation.labels).tolist() == [10] * 4


def test_same_seed_same_split_other_seed_other_split(tiny_dataset):
    a = load_cifar(str(tiny_dataset), val_size=40, seed=5)
    b = load_cifar(str(tiny_dataset), val_size=40, seed=5)
    c = load_cifar(str(tiny_dataset), val_size=40, seed=6)
    assert np.array_equal(a.validation.pixels, b.validation.pixels)
    assert not np.array_equal(a.validation.pixels, c.validation.pixels)


def test_missing_test_split_is_reported_once_and_skipped(tiny_dataset_no_test, caplog):
    data = load_cifar(str(tiny_dataset_no_test), val_size=20)
    assert data.test is None
    assert sum("no test split" in r.message for r in caplog.records) == 1


def test_decoding_is_cached_for_later_runs(tiny_dataset, monkeypatch):
    load_cifar(str(tiny_dataset), val_size=40)  # fills the cache (or finds it filled)
    calls = []
    original = decode_module._decode_one
    monkeypatch.setattr(decode_module, "_decode_one", lambda *a: calls.append(1) or original(*a))
    load_cifar(str(tiny_dataset), val_size=40)
    assert calls == []


def test_image_folder_tree_loads(tmp_path):
    images, labels = synthetic_images(24, seed=4)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = tmp_path / CLASS_NAMES[label]
        folder.mkdir(exist_ok=True)
        image.save(folder / f"{index}.png")
    data = load_cifar(str(tmp_path), val_size=4)
    assert sorted(data.class_names) == sorted(CLASS_NAMES)
    assert len(data.train) + len(data.validation) == 24


def test_an_empty_class_folder_is_one_line_not_a_class_fewer(tmp_path):
    images, labels = synthetic_images(24, seed=4)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "train" / CLASS_NAMES[label]).mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / "train" / CLASS_NAMES[label] / f"{index}.png")
    (tmp_path / "train" / "zebra").mkdir()  # a class whose images were never copied
    with pytest.raises(InputError, match=r"class folder \S+/train/zebra is empty: an image-folder class"):
        load_cifar(str(tmp_path), val_size=4)
    (tmp_path / "train" / "zebra").rmdir()
    (tmp_path / "validation").mkdir()  # an empty split, and a class empty in one split only, are no lost class
    (tmp_path / "test" / CLASS_NAMES[0]).mkdir(parents=True)
    (tmp_path / "test" / CLASS_NAMES[0] / ".DS_Store").write_bytes(b"")
    assert sorted(load_cifar(str(tmp_path), val_size=4).class_names) == sorted(CLASS_NAMES)


def write_folder(root, layout: dict[str, int], seed: int = 4):
    """{relative folder: number of images} as 8x8 PNG files."""
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(synthetic_images(count, seed=seed, size=8)[0]):
            image.save(root / folder / f"{index}.png")
    return root


def the_error_line(dataset, tmp_path, capsys) -> str:
    """Train on `dataset`: exit status 1 and exactly one error line (datasets' progress bars aside), and no folder
    left behind, not even the -s folder this run created."""
    assert train(["-m", "cnn", "-d", "cpu", "--dataset", str(dataset), "--val-size", "2", "-e", "1",
                  "-s", str(tmp_path / "runs"), "--disable_tqdm", "true"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and not (tmp_path / "runs").exists()
    return errors[0]


def test_a_folder_of_files_but_no_image_is_named_in_a_warning_not_a_silent_class_fewer(tmp_path, caplog):
    """Notes or scripts beside the classes are common, so it is no error; but a class fewer is never silent."""
    write_folder(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "readme.txt").write_text("the images of c are still to come")
    (tmp_path / "c" / "._0.png").write_bytes(b"macOS metadata, no image")
    assert sorted(load_cifar(str(tmp_path), val_size=2).class_names) == ["a", "b"]
    assert f"{tmp_path / 'c'} holds files but no image: it is not a class of {tmp_path}" in caplog.text
    (tmp_path / "c" / "readme.txt").rename(tmp_path / "c" / "0.PNG")  # an image by extension, in any case
    synthetic_images(1, seed=9, size=8)[0][0].save(tmp_path / "c" / "0.PNG")
    (tmp_path / "notes.txt").write_text("files beside the class folders are no class")
    (tmp_path / "__MACOSX" / "a").mkdir(parents=True)  # what unzipping on a Mac leaves; the builder skips it
    (tmp_path / "__MACOSX" / "a" / "._0.png").write_bytes(b"macOS metadata")
    assert sorted(load_cifar(str(tmp_path), val_size=2).class_names) == ["a", "b", "c"]


def test_a_parquet_dataset_with_preview_images_is_read_as_parquet(tmp_path):
    """`datasets` reads data/*.parquet; a few PNGs in assets/ (a card's previews) make it no image-folder tree."""
    images, labels = synthetic_images(12, seed=1, size=8)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_dict({"img": images, "label": labels}, features=features).to_parquet(
        str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    write_folder(tmp_path, {"assets": 3})
    assert load_cifar(str(tmp_path), val_size=4).class_names == CLASS_NAMES


def test_a_folder_of_arrow_files_is_no_image_folder_with_an_imageless_class(tmp_path):
    """`datasets` reads a folder by its most common data format: data/*.arrow is a dataset, not a class folder."""
    from datasets.arrow_writer import ArrowWriter

    images, labels = synthetic_images(12, seed=1, size=8)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})
    (tmp_path / "data").mkdir()
    with ArrowWriter(path=str(tmp_path / "data" / "train-00000-of-00001.arrow"), features=features) as writer:
        writer.write_table(datasets.Dataset.from_dict({"img": images, "label": labels}, features=features).data.table)
        writer.finalize()
    assert load_cifar(str(tmp_path), val_size=4).class_names == CLASS_NAMES


def test_a_folder_link_is_one_line_not_a_class_fewer(tmp_path):
    """The image-folder builder reads no image through a link to a folder (a class or a split would vanish);
    links to image files it reads."""
    write_folder(tmp_path / "elsewhere", {"b": 4, "c": 4})
    write_folder(tmp_path / "data", {"a": 4})
    (tmp_path / "data" / "b").symlink_to(tmp_path / "elsewhere" / "b", target_is_directory=True)
    message = error_of(lambda: load_cifar(str(tmp_path / "data"), val_size=2))
    assert message.startswith(f"--dataset: {tmp_path / 'data' / 'b'} is a symbolic link to a folder")
    (tmp_path / "data" / "a").rename(tmp_path / "elsewhere" / "a")  # a tree of links only
    (tmp_path / "data" / "a").symlink_to(tmp_path / "elsewhere" / "a", target_is_directory=True)
    assert "is a symbolic link to a folder" in error_of(lambda: load_cifar(str(tmp_path / "data"), val_size=2))
    (tmp_path / "data" / "a").unlink()
    (tmp_path / "elsewhere" / "a").rename(tmp_path / "data" / "a")
    (tmp_path / "data" / "b").unlink()
    (tmp_path / "data" / "b").mkdir()
    for image in (tmp_path / "elsewhere" / "b").iterdir():
        (tmp_path / "data" / "b" / image.name).symlink_to(image)
    assert sorted(load_cifar(str(tmp_path / "data"), val_size=2).class_names) == ["a", "b"]


@pytest.mark.parametrize("layout, expected", [
    ({"only": 4}, "--dataset: 1 class (only): a classifier needs at least 2 classes"),
    ({"train/only": 4, "test/only": 2}, "--dataset: 1 class (only): a classifier needs at least 2 classes"),
    ({".": 4}, "--dataset: no class folders: put the images in one sub-folder per class ({ds}/<class>/<image>)"),
    ({"train": 4}, "--dataset: no class folders: put the images in one sub-folder per class ({ds}/<class>/<image>)"),
    ({"a": 4, "b": 4, ".": 1}, "--dataset: images lie at different depths ({ds}/0.png and {ds}/"),
], ids=["one class", "one class in split folders", "flat", "flat in a split folder", "mixed depths"])
def test_a_folder_without_two_class_folders_is_one_line(layout, expected, tmp_path, capsys):
    dataset = write_folder(tmp_path / "ds", layout)
    assert the_error_line(dataset, tmp_path, capsys).startswith("error: " + expected.format(ds=dataset))


def test_a_file_as_dataset_is_named_a_file_not_a_missing_folder(tmp_path, capsys):
    write_folder(tmp_path, {"a": 1})
    line = the_error_line(tmp_path / "a" / "0.png", tmp_path, capsys)
    assert line == (f"error: --dataset: {tmp_path / 'a' / '0.png'} is a file, not a folder: pass the dataset's "
                    "folder (one sub-folder of images per class, or a Hub-layout folder of parquet files)")
    assert "no such folder" in the_error_line(tmp_path / "missing", tmp_path, capsys)


def grey_ramps(count: int) -> list[np.ndarray]:
    """8-bit grey images of every value 0-255 in a random order."""
    rng = np.random.default_rng(3)
    return [rng.permutation(256).astype(np.uint8).reshape(16, 16) for _ in range(count)]


def test_wide_grey_modes_scale_to_the_8_bit_pixels_they_stand_for():
    for grey in grey_ramps(2):
        eight_bit = np.asarray(Image.fromarray(grey).convert("RGB"))
        for wide in (grey.astype(np.uint16) * 257, grey.astype(np.int32) * 257, grey.astype(np.float32) / 255):
            assert np.array_equal(np.asarray(to_rgb(Image.fromarray(wide))), eight_bit), wide.dtype
    # Beyond 16 bits (I) or beyond 0-1 (F): stretched from the minimum (0) to the maximum (255).
    for wide in (np.array([[-5, 100_000]], dtype=np.int32), np.array([[2.0, 6.0]], dtype=np.float32)):
        assert np.asarray(to_rgb(Image.fromarray(wide)))[0, :, 0].tolist() == [0, 255]


def test_a_16_bit_image_folder_decodes_to_its_8_bit_pixels(tmp_path):
    greys = grey_ramps(8)
    for bits, scale in ((8, 1), (16, 257)):
        for index, grey in enumerate(greys):
            folder = tmp_path / f"{bits}-bit" / "ab"[index % 2]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(grey.astype(np.uint16 if bits == 16 else np.uint8) * scale).save(folder / f"{index}.png")
    assert Image.open(tmp_path / "16-bit" / "a" / "0.png").mode == "I;16"
    eight, sixteen = (load_cifar(str(tmp_path / f"{bits}-bit"), val_size=2) for bits in (8, 16))
    assert np.array_equal(sixteen.train.pixels, eight.train.pixels)
    assert np.array_equal(sixteen.validation.pixels, eight.validation.pixels)
    assert sixteen.train.pixels.max() == 255  # not clipped white, nor black


def test_other_modes_and_sizes_are_converted_not_rejected(tmp_path):
    odd = [
        Image.new("L", (32, 32), 128),
        Image.new("RGBA", (32, 32), (10, 20, 30, 128)),
        Image.new("P", (32, 32), 3),
        Image.new("RGB", (64, 48), (200, 100, 50)),
    ] * 3
    write_hub_dataset(tmp_path, {"train": (odd, [0, 1, 2, 3] * 3)})
    data = load_cifar(str(tmp_path), val_size=4)
    pixels = np.concatenate([data.train.pixels, data.validation.pixels])
    assert pixels.shape == (12, 32, 32, 3)
    assert (pixels[np.concatenate([data.train.labels, data.validation.labels]) == 3] == [200, 100, 50]).all()


def test_image_column_named_image_is_found(tmp_path):
    write_hub_dataset(tmp_path, {"train": synthetic_images(20, seed=5)}, image_column="image", label_column="labels")
    assert len(load_cifar(str(tmp_path), val_size=4).train) == 16


def error_of(call) -> str:
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_columns_are_named(tmp_path):
    features = datasets.Features({"picture": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"picture": ["x", "y"], "label": [0, 1]}, features=features).to_parquet(
        str(tmp_path / "train.parquet")
    )
    message = error_of(lambda: load_cifar(str(tmp_path), val_size=1))
    assert "no image column" in message and "picture, label" in message


def test_undecodable_image_names_split_and_row(tmp_path):
    images, labels = synthetic_images(10, seed=6)
    buffers = [io.BytesIO() for _ in images]
    for image, buffer in zip(images, buffers, strict=True):
        image.save(buffer, format="PNG")
    raw = [{"bytes": b.getvalue(), "path": None} for b in buffers]
    raw[7] = {"bytes": raw[7]["bytes"][:40], "path": None}  # truncated PNG
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_dict({"img": raw, "label": labels}, features=features).to_parquet(
        str(tmp_path / "data" / "train-00000.parquet")
    )
    message = error_of(lambda: load_cifar(str(tmp_path), val_size=2))
    assert "row 7" in message and "'train'" in message and "--skip-bad-images" in message
    data = load_cifar(str(tmp_path), val_size=2, skip_bad_images=True)
    assert data.bad_images_skipped["train"] == 1 and len(data.train) + len(data.validation) == 9


def test_label_outside_class_range_is_named(tmp_path):
    images, _ = synthetic_images(6, seed=7)
    write_hub_dataset(tmp_path, {"train": (images, [0, 1, 0, 1, 5, 1])}, class_names=list("abcdef"))
    # Declare only 2 of the 6 classes in the card, as a hand-edited dataset might.
    card = (tmp_path / "README.md").read_text()
    extra_names = "".join(f"          '{i}': {c}\n" for i, c in enumerate("cdef", 2))
    (tmp_path / "README.md").write_text(card.replace(extra_names, ""))
    message = error_of(lambda: load_cifar(str(tmp_path), val_size=2))
    assert "label 5" in message and "row 4" in message and "2 classes" in message


def test_validation_size_larger_than_data(tiny_dataset):
    message = error_of(lambda: load_cifar(str(tiny_dataset), val_size=240))
    assert "--val-size 240" in message and "240 images" in message


def test_missing_local_folder(tmp_path):
    assert "no such folder" in error_of(lambda: load_cifar(str(tmp_path / "nope")))


def test_unreachable_hub_names_the_offline_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    message = error_of(lambda: load_cifar("uoft-cs/cifar10"))
    assert "uoft-cs/cifar10" in message and "--dataset PATH" in message
