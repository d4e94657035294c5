"""Models: ResNet-18 (torchvision names, cifar/imagenet stems), small backbones, the GEMINI teacher.

``build_backbone(name, in_channels, out_dim, stem=..., input_shape=...)`` is the entry point for
students and baselines; :class:`Gemini` is the multi-stream teacher of G-DML.
"""

from .gemini import STREAMS, Gemini, conv_stream_output_size
from .registry import BACKBONES, build_backbone
from .resnet import STEMS, BasicBlock, ResNet, load_pretrained, resnet18
from .small import MLP, SmallCNN

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
