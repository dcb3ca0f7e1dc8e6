"""pcw_keras: position information is encoded channel-wise in CNNs, measured and used in Keras 3.

Islam, Kowal, Jia, Derpanis, Bruce, "Global Pooling, More than Meets the Eye:
Position Information is Encoded Channel-Wise in CNNs", ICCV 2021.

Sub-packages load on first use (``pcw_keras.models`` imports Keras then), so
that ``import pcw_keras`` and ``pcw --help`` stay fast. The package's layers
and models are registered with Keras as soon as Keras is imported (now, if it
already is), so that after ``import pcw_keras`` a run's ``.keras`` file loads
with plain ``keras.saving.load_model``, as keras-hub's models do::

    import keras
    import pcw_keras  # noqa: F401

    model = keras.saving.load_model("runs/location-3x3-gapnet/best.keras")
"""
import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_SUBPACKAGES = ("layers", "models", "data", "recipes", "training", "evaluation", "export")
_REGISTERING_MODULES = ("pcw_keras.layers", "pcw_keras.models.wrappers")
"""The modules whose import registers every Keras-serialisable class of the package."""

__all__ = list(_SUBPACKAGES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_with_keras() -> None:
    """Imports the modules that register the package's layers and models with Keras."""
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)


class _RegisterWhenKerasLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders locate ``keras``, and registers the package once it has loaded.

    ``find_spec("keras")`` may be called without an import following (a
    check that Keras is installed), so the finder stays in ``sys.meta_path``
    until a load of ``keras`` has run. When a module of this package is the
    one importing Keras (``from pcw_keras.layers import AugShift`` before
    anything else), the registration, which imports the package's layers and
    models, would find them half-imported: it waits until the package's last
    module being imported has finished, which the finder sees by watching the
    imports of the package's modules as well.
    """

    def __init__(self):
        self._finding = False
        self._pending = False

    def find_spec(self, name, path=None, target=None):
        if self._finding or not (name == "keras" or name.startswith(f"{__name__}.")):
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            self._pending = self._pending or name == "keras"
            if self._pending and not _package_modules_importing(but=module):
                self._pending = False
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                _register_with_keras()

        spec.loader.exec_module = exec_then_register
        return spec


def _package_modules_importing(but) -> bool:
    """Whether a module of this package other than ``but`` is part-way through its import."""
    return any(
        name.startswith(f"{__name__}.") and module is not but
        and getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
    )


if "keras" in sys.modules:
    _register_with_keras()
elif not any(isinstance(finder, _RegisterWhenKerasLoads) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())
