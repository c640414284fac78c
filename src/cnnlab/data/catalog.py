"""The dataset names and mask formats the CLI offers, without torch: the parser is built from them
before any dataset module loads. They must equal what the dataset registry and the mask reader know
(``tests/test_catalogs.py`` checks that)."""

SEGMENTATION_DATASETS = ("camvid", "isbi2012", "dc1000", "carla")  # cnnlab.data.segmentation.PRESETS
MASK_FORMATS = ("auto", "index", "binary", "palette", "red")  # what cnnlab.data.segmentation.read_mask reads
