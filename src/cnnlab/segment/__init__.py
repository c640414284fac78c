"""Semantic segmentation: U-Net family models, paired image/mask data, losses, whole-set metrics.

``train_segmenter`` / ``evaluate_segmenter`` / ``predict_masks`` (in ``cnnlab.segment.api``) are
what ``cnnlab segment train|evaluate|predict`` call; ``cnnlab.segment.inference`` turns a trained
model into masks (sliding windows, flip TTA, the decision threshold). The models register as
``unet``, ``resunet``, ``mobilenetv2-unet`` and ``efficientnet-lite0-unet``.
"""
