"""A local web page: upload an image, see the top-5 classes, a CAM, an FGSM attack or a mask."""
