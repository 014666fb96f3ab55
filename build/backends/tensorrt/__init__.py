"""The TensorRT backend (Jetson): backend.py puts together plan.py (GPU-free
decisions), builder.py (network, config, engine) and calibrator.py (the INT8
entropy calibrator). Every module imports without TensorRT or pycuda."""
