"""The CenterFace network (MobileNetV2 backbone, IDA-up neck, four 1x1 heads) in MindSpore.

``centerface, mobilenetv2, init`` import MindSpore (entry points must call ``centerface_flow.runtime.mindspore()``
first); ``layout`` does not.
"""
