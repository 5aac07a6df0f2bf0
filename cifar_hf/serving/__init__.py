"""Serving a trained classifier: the Gradio demo, the Space folder and the ONNX export (optional extras)."""

DEFAULT_OPSET = 18  # the dynamo exporter's native opset; onnxruntime 1.17+ runs it
