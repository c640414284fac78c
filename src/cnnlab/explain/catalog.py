"""The names ``cnnlab explain`` offers, without torch: the CLI's parser is built from them.

They must equal the registry they name (``cnnlab.explain.cam.METHODS``); a test checks that.
"""
METHOD_NAMES = ("gradcam", "gradcam++", "scorecam", "shapcam")
