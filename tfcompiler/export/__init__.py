"""Exports of a compiled model for serving engines that run ONNX themselves: a Triton Inference Server model
repository (`tfc export triton`, triton_repository.py, its config.pbtxt from triton_config.py)."""
