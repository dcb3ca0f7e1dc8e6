"""pcw_keras: position information is encoded channel-wise in CNNs, measured and used in Keras 3.

Islam, Kowal, Jia, Derpanis, Bruce, "Global Pooling, More than Meets the Eye:
Position Information is Encoded Channel-Wise in CNNs", ICCV 2021.

Sub-packages load on first use (``pcw_keras.models`` imports Keras then), so
that ``import pcw_keras`` and ``pcw --help`` stay fast.
"""
import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("layers", "models", "data", "recipes", "training", "evaluation", "export")

__all__ = list(_SUBPACKAGES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
