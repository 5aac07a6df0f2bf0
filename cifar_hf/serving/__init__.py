"""Serving a trained classifier: the Gradio demo, the Space folder and the ONNX export (optional extras)."""
