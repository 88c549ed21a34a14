"""Frontends: PyTorch (torch.export / torch.fx) and ONNX models into the lmc IR."""
