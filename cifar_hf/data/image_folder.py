"""A local image-folder tree (one sub-folder of images per class) surveyed before `datasets` reads it: what its
builder would leave out without a word (empty class folders, links to folders) or misread, as one line each."""

import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

from ..errors import InputError

# Folder names the image-folder builder reads as splits, not classes.
SPLIT_FOLDERS = {"train", "training", "test", "testing", "eval", "evaluation", "valid", "validation", "val", "dev"}


# What the image-folder builder reads as images (by extension, any case); a .zip it opens and reads inside.
IMAGE_EXTENSIONS = frozenset(ImageFolder.EXTENSIONS) | {".zip"}

# Folders the builder does not look in: .ipynb_checkpoints, .git, __MACOSX (unzipped on a Mac), __pycache__ ...
SKIPPED_FOLDERS = (".", "__")


@dataclass
class ImageFolderSurvey:
    """What one walk of an image-folder tree finds."""

    empty_class_folders: list[Path] = field(default_factory=list)  # no file at all, nor an image in a namesake
    imageless_folders: list[Path] = field(default_factory=list)  # files, but none an image: the builder skips them
    linked_folders: list[Path] = field(default_factory=list)  # symbolic links to folders: the builder skips them
    class_names: set[str] = field(default_factory=set)  # folders holding images, but the root and split folders
    image_depths: dict[int, Path] = field(default_factory=dict)  # one image for each depth below the root


def survey_image_folder(path: Path) -> ImageFolderSurvey:
    """One os.walk of an image-folder tree: its class folders without a single image file and its links to folders
    (the builder would drop the images of each without a word), the classes that hold images, and how deep the
    images lie. Only meaningful for a folder that `datasets` reads as images (not parquet, csv, arrow ...)."""
    holding, filled, named, empty, linked, classes, depths = set(), set(), set(), [], [], set(), {}
    for root, folders, files in os.walk(path, topdown=False):  # links to folders are listed, not entered
        here = Path(root)
        parts = here.relative_to(path).parts
        hidden = any(part.startswith(SKIPPED_FOLDERS) for part in parts)
        files = [name for name in files if not name.startswith(".")]  # .DS_Store, macOS ._x.png: no image
        extensions = [os.path.splitext(name)[1].lower() for name in files]
        if not hidden:
            linked += [here / name for name in folders
                       if not name.startswith(SKIPPED_FOLDERS) and (here / name).is_symlink()]
        images = [name for name, ext in zip(files, extensions, strict=True) if ext in IMAGE_EXTENSIONS]
        if images:
            named.add(here.name)
            if not hidden:
                depths.setdefault(len(parts), here / images[0])
                if parts and here.name.lower() not in SPLIT_FOLDERS:
                    classes.add(here.name)
        if files or any(here / name in filled for name in folders):
            filled.add(here)
        if images or any(here / name in holding for name in folders):
            holding.add(here)
        elif here != path and not hidden:
            empty.append(here)
    empty = [p for p in empty if p.name not in named and p.name.lower() not in SPLIT_FOLDERS]
    return ImageFolderSurvey(sorted(p for p in empty if p not in filled), sorted(p for p in empty if p in filled),
                             sorted(linked), classes, depths)


def check_two_classes(names: list[str], where: str = "") -> None:
    """A classifier needs at least 2 classes: one line naming the one (or none) found `where`."""
    if len(names) < 2:
        found = f"{len(names)} class{'' if len(names) == 1 else 'es'}" + (f" ({names[0]})" if names else "")
        raise InputError(f"--dataset: {found}{where}: a classifier needs at least 2 classes")


def check_folder_classes(loaded: datasets.DatasetDict, survey: ImageFolderSurvey, name: str) -> None:
    """An image-folder tree that the builder gave no label column (nor metadata): say why, in one line."""
    if not loaded or list(next(iter(loaded.values())).features) != ["image"]:
        return
    if len(survey.image_depths) > 1:
        shallow, deep = (survey.image_depths[depth] for depth in sorted(survey.image_depths)[:2])
        raise InputError(f"--dataset: images lie at different depths ({shallow} and {deep}), so no class is read "
                         f"from their folders: put each image directly in its class folder ({name}/<class>/<image>)")
    if not survey.class_names:
        raise InputError(f"--dataset: no class folders: put the images in one sub-folder per class "
                         f"({name}/<class>/<image>)")
    check_two_classes(sorted(survey.class_names))


def check_image_folder(survey: ImageFolderSurvey) -> None:
    """Links to folders and empty class folders: images (or a class) the builder would leave out without a word."""
    if survey.linked_folders:
        linked, count = survey.linked_folders[0], len(survey.linked_folders)
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise InputError(f"--dataset: {linked}{more} is a symbolic link to a folder, and `datasets` reads no "
                         "image through one: its images would be left out; copy the folder in its place (cp -rL) "
                         "or link its image files one by one")
    empty = survey.empty_class_folders
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise InputError(f"--dataset: class folder {empty[0]}{more} is empty: an image-folder class needs at "
                         "least one image (.png, .jpg, ...); add its images or remove the folder")
