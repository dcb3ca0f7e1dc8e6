"""Evaluators: test scores by type, what a trained model does under shifts, and where it keeps position."""
from pcw_keras.evaluation.attacks import AttackReport, accuracy_bound, attack, evaluate_attacks, mask_layer
from pcw_keras.evaluation.consistency import consistency, consistency_curve, plot_curves, write_curves_csv
from pcw_keras.evaluation.evaluators import EVALUATORS, evaluate, evaluate_canvas, register_evaluator
from pcw_keras.evaluation.model_layers import default_layer, feature_model
from pcw_keras.evaluation.position_channels import ChannelRanking, rank_position_channels
from pcw_keras.evaluation.task_metrics import (
    canvas_cell_scores,
    canvas_metric,
    classification_metric,
    mean_iou,
    segmentation_metric,
)

__all__ = [
    "AttackReport",
    "ChannelRanking",
    "EVALUATORS",
    "accuracy_bound",
    "attack",
    "canvas_cell_scores",
    "canvas_metric",
    "classification_metric",
    "consistency",
    "consistency_curve",
    "default_layer",
    "evaluate",
    "evaluate_attacks",
    "evaluate_canvas",
    "feature_model",
    "mask_layer",
    "mean_iou",
    "plot_curves",
    "rank_position_channels",
    "register_evaluator",
    "segmentation_metric",
    "write_curves_csv",
]
