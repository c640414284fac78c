"""Image classification on the shared engine: train, evaluate, predict, show, and the recipes.

``train_classifier`` / ``evaluate_checkpoint`` / ``predict_files`` / ``show_samples`` live in
``cnnlab.classify.api``; what each dataset trains with by default in ``cnnlab.classify.recipes``.
"""
