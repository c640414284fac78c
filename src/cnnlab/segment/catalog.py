"""Names the segmentation CLI offers, without torch: the parser is built from them.

``RECIPE_NAMES`` must equal ``cnnlab.segment.recipes.NAMED`` (``tests/test_catalogs.py`` checks that).
"""
RECIPE_NAMES = ("caries-resunet",)
# what ``focus_on`` may name: centre crops on any class but 0, or on every class equally often
FOCUS_ON = ("foreground", "rare")
