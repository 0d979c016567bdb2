"""Training data: label conversion (``annotations``), augmentation (``augment``), dense targets (``targets``) and
the MindSpore dataset (``pipeline``). Everything but ``pipeline`` is pure numpy/OpenCV."""
