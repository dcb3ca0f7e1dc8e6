"""pcw_keras: position information is encoded channel-wise in CNNs, measured and used in Keras 3.

Islam, Kowal, Jia, Derpanis, Bruce, "Global Pooling, More than Meets the Eye:
Position Information is Encoded Channel-Wise in CNNs", ICCV 2021.
"""
from pcw_keras import layers, models

__version__ = "0.1.0"

__all__ = ["layers", "models", "__version__"]
