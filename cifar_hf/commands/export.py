"""`cifar-hf export --model RUN_FOLDER_OR_HUB_ID --format onnx [--dynamic-batch] [--opset N] [--output DIR]`.

Writes model.onnx and preprocessing.json (image size, resample, mean, std, labels), then runs the ONNX model with
onnxruntime on real images from the run's dataset, one per class (or --check-images), and compares its logits with
PyTorch's. Only a file that passes becomes model.onnx (one that fails is kept as model.rejected.onnx); an existing
export is replaced only with --overwrite.
"""

import math
import sys
from pathlib import Path

from ..errors import CifarError, CommandParser, print_error
from ..serving import DEFAULT_OPSET

MAX_CHECK_IMAGES = 100  # one image per class, up to this many (CIFAR-100's classes all fit)


def parse(argv):
    parser = CommandParser(prog="cifar-hf export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or Hub id")
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--output",
                        help="folder for model.onnx (default: RUN_FOLDER/onnx, or ./onnx-NAME for a Hub id)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export (model.onnx, preprocessing.json) already in --output")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset of the file (default {DEFAULT_OPSET}, the exporter's own; up to the newest "
                             "the installed onnx knows; lower ones only when every operator converts)")
    parser.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed |onnxruntime - PyTorch| logit difference (times the largest |logit| "
                             "when that exceeds 1)")
    parser.add_argument("--check-images", nargs="+", metavar="IMAGE", help="images for the check (default: the "
                        f"run's dataset, one per class, at most {MAX_CHECK_IMAGES})")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom code from a Hub repository")
    args = parser.parse_args(argv)
    if args.opset < 7:
        parser.error(f"--opset must be at least 7 (got {args.opset})")
    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        parser.error(f"--tolerance must be a finite positive number (got {args.tolerance})")
    return args


def default_output(model: str) -> Path:
    local = Path(model).expanduser()
    return local / "onnx" if local.is_dir() else Path(f"onnx-{model.replace('/', '-')}")


def check_images(args, num_classes: int) -> tuple[list, str]:
    import torch

    from ..inference import read_image, run_results
    from ..serving.samples import run_samples

    if args.check_images:
        return [read_image(path) for path in args.check_images], f"{len(args.check_images)} given images"
    samples = run_samples(run_results(args.model), per_class=1, limit=min(num_classes, MAX_CHECK_IMAGES))
    if samples:
        return [image for image, _ in samples], f"{len(samples)} images of the run's dataset (one per class)"
    generator = torch.Generator().manual_seed(0)  # no dataset reachable: still check, and say on what
    from PIL import Image

    noise = torch.randint(0, 256, (4, 32, 32, 3), generator=generator, dtype=torch.uint8).numpy()
    return [Image.fromarray(n) for n in noise], "4 random-pixel images (no dataset of the run is recorded or found)"


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from ..inference import load_classifier
    from ..serving.extras import require
    from ..serving.onnx_export import (
        CONTRACT_FILE,
        check_opset,
        check_output_folder,
        export_onnx,
        max_logit_difference,
        onnx_session,
        parity_ok,
    )

    def check(onnx_file: Path) -> str | None:
        """The onnxruntime check: logits of the file against PyTorch's on the same preprocessed images."""
        session = onnx_session(onnx_file)
        pixels = processor(images, return_tensors="pt")["pixel_values"].float()
        # A fixed-batch model is checked image by image; a dynamic one on the whole batch at once.
        batches = [pixels] if args.dynamic_batch else list(pixels.split(1))
        measured = [max_logit_difference(session, model, batch) for batch in batches]
        difference, scale = max(d for d, _ in measured), max(s for _, s in measured)
        print(f"onnxruntime vs PyTorch on {described}: max abs logit difference {difference:.3g} "
              f"(largest |logit| {scale:.3g}, tolerance {args.tolerance:g})")
        if not parity_ok(difference, scale, args.tolerance):
            return f"the ONNX model's logits differ from PyTorch's by {difference:.3g}, above the tolerance"
        return None

    try:
        output = Path(args.output).expanduser() if args.output else default_output(args.model)
        check_output_folder(output, args.overwrite)  # all three before minutes of loading and exporting
        check_opset(args.opset)
        require("onnxruntime", "export")  # the check runs it: no export that no one checked
        model, transform, processor = load_classifier(args.model, args.trust_remote_code)
        model = model.to("cpu")
        images, described = check_images(args, model.config.num_labels)
        path = export_onnx(model, transform, processor, output, args.opset, args.dynamic_batch, args.overwrite,
                           check=check)
    except CifarError as error:
        return print_error(error)
    print(f"wrote {path} and {path.parent / CONTRACT_FILE} (opset {args.opset}, "
          f"{'dynamic' if args.dynamic_batch else 'fixed'} batch)")
    return 0
