"""Models: ResNet-18 (torchvision names, cifar/imagenet stems), small backbones, the GEMINI teacher.

``build_backbone(name, in_channels, out_dim, stem=..., input_shape=...)`` is the entry point for
students and baselines; :class:`Gemini` is the multi-stream teacher of G-DML.
"""

from guided_dml.models.gemini import STREAMS, Gemini, conv_stream_output_size
from guided_dml.models.registry import BACKBONES, build_backbone
from guided_dml.models.resnet import STEMS, BasicBlock, ResNet, load_pretrained, resnet18
from guided_dml.models.small import MLP, SmallCNN

__all__ = [
    "BACKBONES",
    "MLP",
    "STEMS",
    "STREAMS",
    "BasicBlock",
    "Gemini",
    "ResNet",
    "SmallCNN",
    "build_backbone",
    "conv_stream_output_size",
    "load_pretrained",
    "resnet18",
]
