"""Engine backends, one package each: FP32 ONNX in, an engine file at a precision out.

onnxruntime/  the CPU engine: the exported file (fp32) or a Q/DQ ONNX (int8)
tensorrt/     Jetson GPU/DLA plans; TensorRT and pycuda load only when a build runs

Each backend's ``backend.py`` holds the stage edge_build.recipe calls; both return
an EngineBuild (result.py). Quantizing to Q/DQ ONNX is shared by both and lives
in edge_build.quantize, beside the export stage.
"""
