"""Semantic segmentation: U-Net family models, paired image/mask data, losses, whole-set metrics.

``train_segmenter`` / ``evaluate_segmenter`` / ``predict_masks`` (in ``cnnlab.segment.api``) are
what ``cnnlab segment train|evaluate|predict`` call; the models register as ``unet``,
``resunet`` and ``mobilenetv2-unet``.
"""
