"""The Gradio demo: an image in, the top classes with their probabilities out, with the run's headline metrics.

The prediction endpoint is `/predict` (image in, the gr.Label value out), so `gradio_client` can call it too.
"""

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import torch

from ..data.rgb import to_rgb
from ..errors import InputError, first_line
from ..files import file_name_part
from ..inference import load_classifier, read_image, run_results
from .extras import require
from .samples import run_samples

EXAMPLES_PER_CLASS = 1
MAX_EXAMPLES = 10


def hub_results(model_id: str) -> dict:
    """results.json of a pushed model, {} when it has none or the Hub cannot be reached."""
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model_id, "results.json")).read_text())
    except Exception:  # offline, gated or a model not made by cifar-hf: the demo works without metrics
        return {}


def headline(model_ref: str, model_type: str, results: dict) -> str:
    """One Markdown line: which model, and its accuracy as measured at training time."""
    parts = [f"**{results.get('model', model_type)}** (`{model_ref}`)"]
    for split in ("val", "test"):
        value = results.get(f"{split}_accuracy")
        if value is not None:
            parts.append(f"{'validation' if split == 'val' else 'test'} accuracy {100 * value:.2f}%")
    if results.get("epochs"):
        parts.append(f"{results['epochs']} epochs")
    return " · ".join(parts)


def write_examples(samples, folder: Path) -> list[str]:
    """Save the sample images as PNG files (Gradio serves examples from files); returns their paths."""
    paths = []
    for index, (image, label) in enumerate(samples):
        path = folder / f"{index:02d}-{file_name_part(label)[:80]}.png"  # `rot/red` would name a sub-folder
        image.save(path)
        paths.append(str(path))
    return paths


def uploaded_image(gr, path: str, shown_name: str | None):
    """The uploaded file in RGB, refused as `cifar-hf predict` refuses it; gr.Error shows the reason in the page."""
    try:
        return read_image(path)
    except InputError as error:  # name the file as the user knows it, not Gradio's temporary copy
        raise gr.Error(f"{str(error).replace(path, shown_name or 'the upload')}; not an image: upload a PNG, JPEG or "
                       "other image file",
                       print_exception=False) from None


def image_input(gr, **kwargs):
    """gr.Image whose upload is read by `uploaded_image`: a zero-byte, text or truncated file is one line in the
    page, not Gradio's bare "Error" (and a traceback in the server log)."""
    component = gr.Image(type="pil", **kwargs)
    gradio_preprocess = component.preprocess

    # Replaced on the instance: a gr.Image subclass would make Gradio write a .pyi stub beside this module.
    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return uploaded_image(gr, payload.path, payload.orig_name)
        try:
            return gradio_preprocess(payload)
        except (OSError, ValueError) as error:  # a pasted image that does not decode
            raise gr.Error(f"not an image: {first_line(error)}", print_exception=False) from None

    component.preprocess = preprocess
    return component


class Classifier:
    """The model and its saved image processor, preprocessing exactly as `cifar-hf predict` does."""

    def __init__(self, model_ref: str, trust_remote_code: bool = False):
        self.model, _, self.processor = load_classifier(model_ref, trust_remote_code)
        self.device = next(self.model.parameters()).device

    @torch.no_grad()
    def probabilities(self, image) -> dict[str, float]:
        """{class name: probability} for every class, as gr.Label takes it."""
        if image is None:
            return {}
        image = to_rgb(image, self.processor.grayscale)  # a grey-trained model sees every upload as grey
        pixels = self.processor(image, return_tensors="pt")["pixel_values"].to(self.device)
        probabilities = self.model(pixel_values=pixels).logits.float().softmax(-1)[0]
        return {self.model.config.id2label[i]: float(p) for i, p in enumerate(probabilities)}


def build_demo(model_ref: str, top_k: int = 3, trust_remote_code: bool = False, examples: list | None = None):
    """The gr.Interface for `model_ref` (run folder or Hub id); `examples` default to a few images of its dataset."""
    gr = require("gradio", "demo")
    classifier = Classifier(model_ref, trust_remote_code)
    local = Path(model_ref).expanduser().is_dir()
    results = run_results(model_ref) if local else hub_results(model_ref)
    if examples is None:
        folder = Path(tempfile.mkdtemp(prefix="cifar-hf-examples-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # Gradio has its own copies once built
        examples = write_examples(run_samples(results, EXAMPLES_PER_CLASS, MAX_EXAMPLES), folder)
    num_classes = classifier.model.config.num_labels
    return gr.Interface(
        fn=classifier.probabilities,
        inputs=image_input(gr, label="Image (upload, paste or pick an example)", sources=["upload", "clipboard"],
                           image_mode=None),  # to_rgb, not Gradio, converts (Gradio clips 16-bit images to white)
        outputs=gr.Label(num_top_classes=min(top_k, num_classes), label="Top classes"),
        examples=examples or None,
        cache_examples=False,
        title="cifar-hf image classifier",
        description=headline(model_ref, classifier.model.config.model_type, results),
        flagging_mode="never",
        api_name="predict",
        analytics_enabled=False,
    )
