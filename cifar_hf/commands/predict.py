"""`cifar-hf predict --model RUN_FOLDER_OR_HUB_ID IMAGE [IMAGE ...] [--top-k 3]`: classify image files.

One line per image with its top classes and probabilities. Any size or mode works (resized and normalised as in
training). A file that is not an image (missing, not a regular file, unreadable, a decompression bomb) gets a
one-line error; the others are still classified, in batches, and the exit status is 1.
"""

import sys

from ..errors import CommandParser, InputError, print_error


def parse(argv):
    parser = CommandParser(prog="cifar-hf predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", required=True, help="run folder or Hub id")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom code from a Hub repository")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1 (got {args.top_k})")
    return args


BATCH_SIZE = 64


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Only now: --help and flag errors answer without loading torch and transformers.
    import torch

    with torch.no_grad():
        return classify(args)


def classify(args) -> int:
    """One line per image with its top classes, through `pipeline("image-classification")`; 1 when an image could
    not be read (the others are still classified)."""
    from transformers import pipeline

    from ..inference import load_classifier, read_image

    try:
        model, _, processor = load_classifier(args.model, args.trust_remote_code)
    except InputError as error:
        return print_error(error)
    classifier = pipeline("image-classification", model=model, image_processor=processor,
                          device=next(model.parameters()).device)
    top_k = min(args.top_k, model.config.num_labels)
    failed = 0
    for start in range(0, len(args.images), BATCH_SIZE):
        paths, images = [], []
        for path in args.images[start: start + BATCH_SIZE]:
            try:
                images.append(read_image(path, processor.grayscale))
                paths.append(path)
            except InputError as error:
                print(f"error: {error}", file=sys.stderr)
                failed += 1
        if not images:
            continue
        for path, best in zip(paths, classifier(images, top_k=top_k, batch_size=BATCH_SIZE), strict=True):
            print(f"{path}: " + ", ".join(f"{entry['label']} {entry['score']:.3f}" for entry in best))
    return 1 if failed else 0
