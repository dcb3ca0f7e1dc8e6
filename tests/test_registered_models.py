"""Every registered model, at a small width, through the model harness (build, call, config, .keras, mixed precision)."""
import numpy as np
import pytest
from model_harness import run_model_test

from pcw_keras import models
from pcw_keras.models.registry import ALIASES

pytestmark = pytest.mark.jax  # backend-neutral: runs in the JAX run too

BATCH, SIDE, CLASSES = 2, 24, 3  # 24: stage 4 of a blur ResNet blurs a 3-pixel map (reflect padding needs > 2)
# An alias calls its canonical model's function (tests/test_models.py checks they build the same model).
NAMES = [name for name in models.list_models() if name not in ALIASES]


def _case(name: str) -> tuple[dict, tuple]:
    """``create_model`` arguments for ``name`` and the output shape they give."""
    kwargs = {"num_classes": CLASSES, "input_shape": (SIDE, SIDE, 3), "width": 0.0625}
    if name.startswith("deeplabv3"):
        return {**kwargs, "atrous_rates": (1, 2), "aspp_filters": 8}, (BATCH, SIDE, SIDE, CLASSES)
    if "permutenet" in name:
        kwargs["permutation_seed"] = 0  # it permutes in inference too: the round trips compare seeded draws
    return kwargs, (BATCH, CLASSES)


def test_every_registered_name_is_tested_or_an_alias_of_a_tested_one():
    assert set(NAMES) | set(ALIASES) == set(models.list_models()) and set(ALIASES.values()) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_registered_model(name, tmp_path):
    kwargs, expected = _case(name)
    data = np.random.default_rng(0).normal(size=(BATCH, SIDE, SIDE, 3)).astype("float32")
    model = run_model_test(lambda **kw: models.create_model(name, **kw), kwargs, data, expected, str(tmp_path))
    assert model.get_layer("head") is not None
