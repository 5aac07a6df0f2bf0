"""Serving a trained classifier: the Gradio demo, the Space folder and the ONNX export (optional extras)."""

# The dynamo exporter's native opset (others come from onnxscript's converter); onnxruntime 1.17+ runs it.
DEFAULT_OPSET = 18
