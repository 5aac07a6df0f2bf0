"""CPU inference speed of a classifier: PyTorch eager vs onnxruntime on the exported model, batch 1 and 64.

    python benchmarks/inference_speed.py --model RUN_FOLDER [--batch-sizes 1 64] [--threads 1] [--output FILE.json]

Both runtimes get the same thread count and the same random input; each timing is the median of --rounds rounds
(the two runtimes alternate, so a busy machine slows both alike). Prints one line per batch size and writes JSON.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cifar_hf.inference import load_classifier
from cifar_hf.serving.extras import require
from cifar_hf.serving.onnx_export import export_onnx


def images_per_second(run, batch: int, seconds: float) -> float:
    """Images per second of `run()` on `batch` images, repeating it for about `seconds`."""
    count, start = 0, time.perf_counter()
    while True:
        run()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count * batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed round")
    parser.add_argument("--output")
    args = parser.parse_args()
    ort = require("onnxruntime", "export")
    torch.set_num_threads(args.threads)
    model, transform, processor = load_classifier(args.model)
    model = model.to("cpu")
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, transform, processor, Path(folder), dynamic_batch=True,
                           check=lambda onnx_file: None)  # timed, not kept: `cifar-hf export` checks parity
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = []
    for batch in args.batch_sizes:
        pixels = torch.randn(batch, 3, transform.image_size, transform.image_size)
        array = pixels.numpy()

        @torch.inference_mode()
        def eager(pixels=pixels):
            model(pixel_values=pixels)

        def onnx(array=array):
            session.run(["logits"], {"pixel_values": array})

        eager(), onnx()  # warm-up: first calls allocate
        timings = {"pytorch": [], "onnxruntime": []}
        for _ in range(args.rounds):
            timings["pytorch"].append(images_per_second(eager, batch, args.seconds))
            timings["onnxruntime"].append(images_per_second(onnx, batch, args.seconds))
        row = {"batch_size": batch, **{k: round(statistics.median(v), 1) for k, v in timings.items()}}
        rows.append(row)
        print(f"{model.config.model_type} batch {batch}: PyTorch eager {row['pytorch']:.1f} images/s, "
              f"onnxruntime {row['onnxruntime']:.1f} images/s ({row['onnxruntime'] / row['pytorch']:.2f}x)")
    result = {
        "model": args.model, "model_type": model.config.model_type, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__}, "rows": rows,
    }
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
