"""The ONNX Runtime (CPU) backend: see backend.py."""
