"""The model names the CLI offers, without torch: the parser is built from them before any model
family is imported. They must equal the model registry's (``tests/test_catalogs.py`` checks that)."""

SEGMENTATION_MODELS = ("unet", "resunet", "mobilenetv2-unet", "efficientnet-lite0-unet")  # tag "segmentation"
