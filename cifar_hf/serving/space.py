"""A Space-ready folder (app.py, rgb.py, requirements.txt, README.md) serving a pushed model, and its upload.

app.py depends on Transformers and Gradio only: a pushed cifar-hf model carries its own modeling code, and rgb.py is
a copy of `cifar_hf.data.rgb`, so an upload is read as training and `cifar-hf predict` read it.
"""

from pathlib import Path

from huggingface_hub import HfApi

from ..data import rgb
from ..errors import InputError

APP = '''"""Gradio demo of {model_id}, written by `cifar-hf demo --write-space`."""

import json
import os

import gradio as gr
from huggingface_hub import hf_hub_download
from rgb import to_rgb  # 16-bit and float grey scaled to 8 bits, as in training (convert("RGB") clips them)
from transformers import pipeline

MODEL_ID = os.environ.get("CIFAR_HF_MODEL", {model_id!r})
REVISION = os.environ.get("CIFAR_HF_REVISION", "main")  # pin the commit you reviewed: the model runs its own code
TOP_K = {top_k}

classifier = pipeline("image-classification", model=MODEL_ID, revision=REVISION, trust_remote_code=True,
                      device="cpu")
# A model trained on grey images reads every upload as grey (its processor says so; a timm model's config does).
GRAYSCALE = bool(getattr(classifier.image_processor, "grayscale", False)
                 or (getattr(classifier.model.config, "pretrained_cfg", None) or {{}}).get("grayscale", False))


def headline() -> str:
    try:
        path = os.path.join(MODEL_ID, "results.json") if os.path.isdir(MODEL_ID) else hf_hub_download(
            MODEL_ID, "results.json", revision=REVISION)
        results = json.load(open(path))
    except Exception:  # a model without results.json still gets a demo
        return f"`{{MODEL_ID}}`"
    accuracy = results.get("test_accuracy") or results.get("val_accuracy")
    split = "test" if results.get("test_accuracy") else "validation"
    return f"**{{results['model']}}** (`{{MODEL_ID}}`) · {{split}} accuracy {{100 * accuracy:.2f}}%"


def predict(image):
    if image is None:
        return {{}}
    image = to_rgb(image, GRAYSCALE)
    return {{p["label"]: p["score"] for p in classifier(image, top_k=None)}}


demo = gr.Interface(
    fn=predict,
    inputs=gr.Image(type="pil", image_mode=None, label="Image", sources=["upload", "clipboard"]),
    outputs=gr.Label(num_top_classes=TOP_K, label="Top classes"),
    title="cifar-hf image classifier",
    description=headline(),
    flagging_mode="never",
    api_name="predict",
)

if __name__ == "__main__":
    demo.launch()
'''

REQUIREMENTS = "torch\ntransformers>=5.6,<6\ntimm>=1.0\npillow\nnumpy\ngradio>=5\n"

CARD = """---
title: {title}
emoji: 🖼️
colorFrom: indigo
colorTo: blue
sdk: gradio
app_file: app.py
pinned: false
license: apache-2.0
models:
- {model_id}
---

# {title}

Drop an image to classify it with [{model_id}](https://huggingface.co/{model_id}), trained with cifar-hf.
The model runs its own code (`trust_remote_code=True`); set `CIFAR_HF_REVISION` to the commit you reviewed.
"""


SPACE_FILES = ("app.py", "rgb.py", "requirements.txt", "README.md")


def default_space_id(model_id: str) -> str:
    """The Space next to the model: owner/name-demo."""
    return f"{model_id}-demo"


def write_space(folder: Path, model_id: str, top_k: int = 3, overwrite: bool = False) -> list[Path]:
    """Write app.py, rgb.py, requirements.txt and README.md into `folder`; returns their paths.

    A file of the same name with other contents (the user's own app.py, say) is replaced only with `overwrite`.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--write-space {folder} is a file: give a folder (the Space's files go into it)")
    texts = (APP.format(model_id=model_id, top_k=top_k), Path(rgb.__file__).read_text(), REQUIREMENTS,
             CARD.format(title=f"{model_id.split('/')[-1]} demo", model_id=model_id))
    files = dict(zip(SPACE_FILES, texts, strict=True))
    other = [name for name, text in files.items() if (folder / name).exists() and (folder / name).read_text(
        errors="replace") != text]
    if other and not overwrite:
        raise InputError(f"--write-space {folder} already holds {', '.join(other)} with other contents: give another "
                         "folder, or --overwrite to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return [folder / name for name in files]


def push_space(folder: Path, space_id: str, private: bool | None = None) -> str:
    """Create the Gradio Space (if needed) and upload `folder`; credentials come from the environment."""
    api = HfApi()
    space_id = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private,
                               exist_ok=True).repo_id
    commit = api.upload_folder(repo_id=space_id, folder_path=str(folder), repo_type="space",
                               allow_patterns=list(SPACE_FILES),  # never the user's other files in the folder
                               commit_message="cifar-hf demo Space")
    return str(getattr(commit, "commit_url", commit))
