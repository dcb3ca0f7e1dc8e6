"""Option values the command line offers before Keras is imported (``pcw --help`` stays fast and backend-free)."""

FILLS = ("zero", "reflect", "replicate")
"""What :class:`pcw_keras.layers.AugShift` lets in at the border."""

REPRODUCE_TABLES = ("channels", "translation")
"""The paper's tables that ``pcw reproduce`` fills (:data:`pcw_keras.reproduce.TABLES`)."""

REPRODUCE_SCALES = ("paper", "reduced", "demo")
"""The scales of ``pcw reproduce`` (:mod:`pcw_keras.reproduce`)."""

PREPROCESS = ("cifar", "imagenet", "unit", "none")
"""How a model file wants its pixels: the names of :data:`pcw_keras.normalization.NORMALIZATIONS` (a test checks
that they agree), spelled out here so that ``pcw --help`` does not import NumPy."""

APS_BLUR_SIZES = (2, 7)
"""The smallest and largest side of the binomial blur before an adaptive polyphase selection (both allowed):
``blur`` of :class:`pcw_keras.layers.PolyphaseDownsample2D` and ``PolyphaseSelect2D``, ``aps_blur`` of
:func:`pcw_keras.models.resnet.resnet` and of the recipes."""

CANVAS_TASKS = ("location", "image")
"""The paper's canvas tasks: where the image is (``location``) and what it is (``image``)."""

STRATEGY_NAMES = ("auto", "default", "one_device", "mirrored", "multi_worker")
"""How a run spreads over devices and processes: the names :func:`pcw_keras.training.choose_strategy` accepts."""

INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16")
"""The precisions of a model's inference form (:mod:`pcw_keras.models.inference`): ``--precision`` of
``pcw evaluate``, ``rank``, ``attack`` and ``consistency``."""
