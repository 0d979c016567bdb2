"""Weight conversions into CenterFace checkpoints: the authors' released ONNX model (``released``), torchvision
MobileNetV2 ImageNet weights (``backbone``, read by the torch-free restricted reader ``torch_pickle``)."""
