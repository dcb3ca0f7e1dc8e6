"""Option values the command line offers before Keras is imported (``pcw --help`` stays fast and backend-free)."""

FILLS = ("zero", "reflect", "replicate")
"""What :class:`pcw_keras.layers.AugShift` lets in at the border."""
