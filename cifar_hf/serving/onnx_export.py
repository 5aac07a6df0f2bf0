"""ONNX export of a classifier, its preprocessing contract, and the onnxruntime check against PyTorch.

The contract (preprocessing.json beside model.onnx) is everything a runtime without Python's Transformers needs:
resize to `image_size` with `resample`, scale by `rescale_factor`, normalise with `mean` / `std`, channels first;
`grayscale`: the model was trained on grey images, so every image is first converted to grey (PIL's "L": luma).
"""

import contextlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.preprocessing import PIL_RESAMPLE
from ..data.rgb import to_rgb
from ..errors import CifarError, InputError, StorageError, first_line
from . import DEFAULT_OPSET
from .extras import require

CONTRACT_FILE = "preprocessing.json"
MODEL_FILE = "model.onnx"
REJECTED_FILE = "model.rejected.onnx"  # an export whose logits failed the check: kept to inspect, never as model.onnx
OPERATOR_PATTERN = re.compile(r"target=(torch\.ops\.[\w.]+)|(aten::\w+|aten\.\w+(?:\.\w+)?|torch\.ops\.[\w.]+)")
SUMMARY_PATTERN = re.compile(r"## Exception summary\s+<class '[\w.]+'>: ([^\n]+)")  # the dynamo exporter's root cause
ANSI_PATTERN = re.compile(r"\x1b\[[0-9;]*m")


class LogitsOnly(torch.nn.Module):
    """pixel_values -> logits: the exported graph has one input and one output, whatever the model returns."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def preprocessing_contract(transform, processor, model_config, opset: int, dynamic_batch: bool) -> dict:
    """What model.onnx expects, from the BatchTransform that `load_classifier` built from the saved processor."""
    contract = {
        "input_name": "pixel_values",
        "output_name": "logits",
        "layout": "NCHW float32",
        "image_size": int(transform.image_size),
        "resample": transform.resample,
        "rescale_factor": 1 / 255,
        "mean": [float(v) for v in transform.mean],
        "std": [float(v) for v in transform.std],
        "grayscale": bool(getattr(processor, "grayscale", False)),  # a grey-trained model: convert("L") first
        "id2label": {str(k): v for k, v in model_config.id2label.items()},
        "model_type": model_config.model_type,
        "dynamic_batch": dynamic_batch,
        "opset": opset,
    }
    data_config = getattr(processor, "data_config", None)  # timm checkpoints: resize larger, then centre-crop
    if data_config:
        contract["crop_pct"] = float(data_config.get("crop_pct") or 1.0)
        contract["resample"] = data_config.get("interpolation", "bicubic")
    return contract


def export_failure(error: Exception, opset: int) -> str:
    """One line: the operator the exporter failed on (when it names one) and its root cause."""
    text = ANSI_PATTERN.sub("", f"{error}\n{error.__cause__ or ''}")
    operator = OPERATOR_PATTERN.search(text)
    summary = SUMMARY_PATTERN.search(text)
    detail = summary.group(1) if summary else (text.strip().splitlines() or [type(error).__name__])[0]
    where = f"operator {operator.group(1) or operator.group(2)}" if operator else type(error).__name__
    return f"ONNX export (opset {opset}) failed at {where}: {detail.strip()[:300]}"


def newest_opset() -> int:
    """The newest ONNX opset the installed onnx package knows: the converter cannot go beyond it."""
    return require("onnx", "export").defs.onnx_opset_version()


def supported_opsets_text() -> str:
    return (f"torch.onnx.export (dynamo) writes opsets {DEFAULT_OPSET}-{newest_opset()}, lower ones only when every "
            "operator of the model converts")


def check_opset(opset: int) -> None:
    """Beyond the newest opset the converter knows, the exporter would silently keep its own: refused at once."""
    if opset > newest_opset():
        raise InputError(f"--opset {opset}: {supported_opsets_text()}")


def written_opset(path: Path) -> int:
    """The default-domain opset recorded in the ONNX file itself (what a runtime will see)."""
    onnx = require("onnx", "export")
    imports = onnx.load(str(path), load_external_data=False).opset_import
    return next(entry.version for entry in imports if entry.domain in ("", "ai.onnx"))


def check_output_folder(output_dir: Path, overwrite: bool = False) -> None:
    """Refuse, before any work, a file given as the folder and an export (either file) that is there already."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"--output {output_dir} is a file: give a folder (model.onnx and {CONTRACT_FILE} go into it)")
    present = [name for name in (MODEL_FILE, CONTRACT_FILE) if (output_dir / name).exists()]
    if present and not overwrite:
        raise InputError(f"--output {output_dir} already holds {' and '.join(present)}: give another folder, or "
                         "--overwrite to replace it")


class RejectedExport(CifarError):
    """The export failed its check: kept as model.rejected.onnx, and an earlier model.onnx is as it was."""


def export_onnx(
    model, transform, processor, output_dir: Path, opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
    overwrite: bool = False, *, check: Callable[[Path], str | None],
) -> Path:
    """Write model.onnx (at exactly `opset`) and preprocessing.json into `output_dir`; returns the model's path.

    Both are written beside their final names and renamed into place only once the file's opset is right and
    `check(file)` (the onnxruntime comparison) returns no problem, so a failed export leaves an earlier one as it
    was. A file that fails `check` is kept as model.rejected.onnx and RejectedExport names the problem.
    """
    require("onnx", "export")
    require("onnxscript", "export")  # the dynamo exporter translates through onnxscript
    check_opset(opset)
    check_output_folder(output_dir, overwrite)
    created = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"--output {output_dir}: {error.strerror or error}") from None
    path, partial = output_dir / MODEL_FILE, output_dir / f".{MODEL_FILE}.partial"
    partial_contract, rejected = output_dir / f".{CONTRACT_FILE}.partial", output_dir / REJECTED_FILE
    side = int(transform.image_size)
    example = torch.zeros(2 if dynamic_batch else 1, 3, side, side)
    shapes = {"pixel_values": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    model = model.to("cpu").eval()
    try:
        # The exporter narrates its steps on stdout and logs a failed opset conversion with a traceback on stderr;
        # the command prints its own summary, and the opset is checked in the file below.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), torch.no_grad():
            torch.onnx.export(
                LogitsOnly(model).eval(), (example,), str(partial), input_names=["pixel_values"],
                output_names=["logits"], opset_version=opset, dynamic_shapes=shapes, dynamo=True,
                external_data=False, verbose=False,
            )
        written = written_opset(partial)
        if written != opset:  # the converter gave up and kept its own opset: never label a file with another one
            raise InputError(f"--opset {opset}: the exporter cannot convert this model to opset {opset} (it "
                             f"produced opset {written}); {supported_opsets_text()}")
        try:
            problem = check(partial)
        except CifarError:
            raise
        except Exception as error:  # onnxruntime refused the graph: a failed check, and the file worth keeping
            problem = f"onnxruntime could not run the export ({first_line(error)})"
        if problem:
            os.replace(partial, rejected)
            kept = "is left as it was" if path.exists() else "was not written"
            raise RejectedExport(f"{problem}; {path} {kept}, and the export is kept for inspection as {rejected}")
        contract = preprocessing_contract(transform, processor, model.config, written, dynamic_batch)
        partial_contract.write_text(json.dumps(contract, indent=2) + "\n")
        os.replace(partial, path)
        os.replace(partial_contract, output_dir / CONTRACT_FILE)
        rejected.unlink(missing_ok=True)  # an earlier try's: this folder's export passed now
    except CifarError:
        raise
    except OSError as error:
        raise StorageError(f"--output {output_dir}: {error.strerror or error}") from None
    except Exception as error:  # the exporter raises many types; all mean the same to the user
        raise InputError(export_failure(error, opset)) from None
    finally:
        for leftover in (partial, partial_contract):
            with contextlib.suppress(OSError):  # a read-only folder: the error above is the one to report
                leftover.unlink(missing_ok=True)
        if created and not path.exists() and not rejected.exists():  # a failed export leaves no empty folder
            with contextlib.suppress(OSError):
                output_dir.rmdir()
    return path


def load_contract(onnx_path: Path) -> dict:
    return json.loads((Path(onnx_path).parent / CONTRACT_FILE).read_text())


def onnx_session(onnx_path: Path):
    ort = require("onnxruntime", "export")
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def contract_pixels(images: list[Image.Image], contract: dict) -> np.ndarray:
    """Preprocess PIL images with nothing but the contract, PIL and NumPy (as a deployment would; `to_rgb` is PIL and
    NumPy too, and reads 16-bit and float grey images as training does)."""
    side = contract["image_size"]
    mean = np.asarray(contract["mean"], dtype=np.float32)
    std = np.asarray(contract["std"], dtype=np.float32)
    resample = PIL_RESAMPLE[contract["resample"]]
    batch = []
    for image in images:
        image = to_rgb(image, contract.get("grayscale", False))  # contracts written before it are colour
        crop_pct = contract.get("crop_pct", 1.0)
        if crop_pct < 1.0:  # timm's evaluation transform: shorter side to side / crop_pct, then the centre square
            scale = int(side / crop_pct) / min(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), resample)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        elif image.size != (side, side):
            image = image.resize((side, side), resample)
        scaled = np.asarray(image, dtype=np.float32) * np.float32(contract["rescale_factor"])
        batch.append(((scaled - mean) / std).transpose(2, 0, 1))
    return np.stack(batch).astype(np.float32)


def max_logit_difference(session, model, pixels: torch.Tensor) -> tuple[float, float]:
    """(max |onnxruntime - PyTorch| over the logits, max |PyTorch logit|) on the same preprocessed batch."""
    with torch.no_grad():
        reference = model.to("cpu")(pixel_values=pixels).logits.float().numpy()
    exported = session.run(["logits"], {"pixel_values": pixels.numpy()})[0]
    return float(np.abs(exported - reference).max()), float(np.abs(reference).max())


def parity_ok(difference: float, scale: float, tolerance: float) -> bool:
    """fp32 parity: the absolute tolerance, scaled up for models whose logits exceed 1 in magnitude."""
    return difference <= tolerance * max(1.0, scale)
