"""The paper's numbers and the kept share, checked on the paper's own tables."""
import pytest

from pcw_keras import paper

pytestmark = pytest.mark.jax  # backend-free: runs in the JAX run too


def test_tables_hold_the_papers_values():
    assert len(paper.CHANNELS) == 8 and len(paper.TRANSLATION) == 6
    assert paper.CHANNELS[("location", 7, "permutenet")] == 21.4 and paper.CHANNELS[("image", 3, "gapnet")] == 82.6
    assert paper.TRANSLATION[("cifar100", "resnet18-augshift")] == {"top1": 72.6, "consistency": 85.6}


def test_kept_share_is_permutenets_share_of_gapnets_above_chance_accuracy():
    assert paper.kept_share(78.8, 100.0, 100 / 9) == pytest.approx(0.7615, abs=1e-4)
    assert paper.kept_share(0.5, 0.8, 0.2) == pytest.approx(0.5)  # fractions as well as percent
    assert paper.kept_share(0.0, 0.5, 0.5) is None  # GAPNet at chance: no share to keep


@pytest.mark.parametrize("task, grid, share", [
    ("location", 3, 0.7615),  # (78.8 - 100/9) / (100 - 100/9)
    ("image", 3, 0.9931),  # (82.1 - 10) / (82.6 - 10): CIFAR-10's chance, whatever data a run used
    ("location", 7, 0.1976),  # (21.4 - 100/49) / (100 - 100/49)
    ("image", 7, 0.8308),  # (69.9 - 10) / (82.1 - 10)
])
def test_the_papers_kept_shares_from_its_table_1_and_its_chance(task, grid, share):
    assert paper.channels_kept_share(task, grid) == pytest.approx(share, abs=1e-4)


def test_the_documents_quote_the_papers_kept_shares():
    from pathlib import Path

    template = Path(__file__).resolve().parent.parent / "docs" / "templates" / "results.md"
    quoted = f"| kept share, the paper (full scale) | {100 * paper.channels_kept_share('location', 3):.0f}% | " \
             f"{100 * paper.channels_kept_share('image', 3):.0f}% |"
    assert quoted in template.read_text(encoding="utf-8")


def test_the_command_lines_scales_are_named_scales():
    from pcw_keras.choices import REPRODUCE_SCALES
    from pcw_keras.scales import SCALES

    assert set(REPRODUCE_SCALES) <= set(SCALES) and REPRODUCE_SCALES == ("paper", "reduced", "demo")
