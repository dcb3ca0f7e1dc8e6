"""The demo's verdict follows its own numbers: supporting, contradicting and undecided tables."""
from pcw_keras.demo_verdict import IMAGE_CLOSE_POINTS, LOCATION_GAP_POINTS, verdict


def _table(gap_location, perm_location, gap_image, perm_image, curve=()):
    return {"grid": 3, "GAPNet": {"location": gap_location, "image": gap_image},
            "PermuteNet": {"location": perm_location, "image": perm_image},
            "chance": {"location": 1 / 9, "image": 0.1}, "runs": {"image-permutenet": {"validation_curve": list(curve)}}}


def test_a_table_like_the_papers_supports_the_claim():
    decided = verdict(_table(1.0, 0.788, 0.826, 0.821))  # 3x3 is too close on location: 21 points
    assert decided.kind == "inconclusive" and "21 points" in decided.sentence
    decided = verdict(_table(1.0, 0.2, 0.5, 0.45))
    assert decided.kind == "supports" and "position lives in the order of the channels" in decided.sentence
    assert "80 points" in decided.sentence


def test_permutenet_locating_as_well_as_gapnet_contradicts_it():
    decided = verdict(_table(1.0, 0.95, 0.5, 0.48))
    assert decided.kind == "contradicts" and "position lives" not in decided.sentence


def test_semantics_lost_too_is_inconclusive_and_says_so():
    decided = verdict(_table(1.0, 0.098, 0.452, 0.168, [0.1, 0.12, 0.11, 0.15, 0.17, 0.19]))  # a measured demo table
    assert decided.kind == "inconclusive" and "inconclusive" in decided.sentence
    assert "cannot tell whether position lives in the order of the channels" in decided.sentence
    assert "still rising" in decided.sentence
    flat = verdict(_table(1.0, 0.098, 0.452, 0.168, [0.2, 0.3, 0.2, 0.1, 0.2, 0.1]))
    assert "not yet caught up" in flat.sentence


def test_an_untrained_gapnet_is_inconclusive():
    assert verdict(_table(0.15, 0.12, 0.1, 0.1)).kind == "inconclusive"


def test_the_seed_spread_widens_the_thresholds():
    table = _table(1.0, 1.0 - (LOCATION_GAP_POINTS + 5) / 100, 0.5, 0.5 - (IMAGE_CLOSE_POINTS - 3) / 100)
    assert verdict(table).kind == "supports"
    assert verdict(table, spread={"location": 1.0, "image": 0.5}).kind == "supports"
    assert verdict(table, spread={"location": 3.0, "image": 0.0}).kind == "inconclusive"  # 35 < 30 + 2 x 3
    assert verdict(table, spread={"location": 0.0, "image": 2.0}).kind == "inconclusive"  # 7 > 10 - 2 x 2


def test_a_small_gap_with_permutenet_at_chance_is_not_a_contradiction():
    decided = verdict(_table(0.3, 0.2, 0.1, 0.1))
    assert decided.kind == "inconclusive" and "not yet apart" in decided.sentence


def test_the_seed_summary_decides_on_the_mean_table_with_the_gaps_spread():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "demo_seeds.py"
    spec = importlib.util.spec_from_file_location("demo_seeds", path)
    demo_seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_seeds)
    runs = [{**_table(1.0, perm, 0.5, 0.45, [0.1, 0.2, 0.3]), "seed": seed}
            for seed, perm in enumerate((0.2, 0.3, 0.4))]
    summary = demo_seeds.summarize(runs)
    assert summary["mean"]["PermuteNet"]["location"] == 0.3 and summary["gap_spread_points"]["location"] == 10.0
    assert summary["verdict"] == "supports"  # gap 70 >= 30 + 2 x 10
    runs[2]["PermuteNet"]["location"] = 1.0  # mean gap 50, spread 40: 50 < 30 + 80
    assert demo_seeds.summarize(runs)["verdict"] == "inconclusive"
