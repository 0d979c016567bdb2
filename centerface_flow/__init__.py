"""centerface-flow: the CenterFace face detector on MindSpore, trained, tested, evaluated and exported.

The package never imports MindSpore at import time: commands that only read text files (evaluate, postprocess,
summarize) stay fast. Code that needs MindSpore gets it through :func:`centerface_flow.runtime.mindspore`.
"""

__version__ = "0.1.0"
