"""Evaluators: what a trained model does under shifts, and where it keeps position."""
from pcw_keras.evaluation.consistency import consistency, consistency_curve, plot_curves, write_curves_csv
from pcw_keras.evaluation.attacks import AttackReport, accuracy_bound, attack, evaluate_attacks, mask_layer
from pcw_keras.evaluation.position_channels import ChannelRanking, default_layer, feature_model, rank_position_channels
from pcw_keras.evaluation.task_metrics import canvas_cell_scores, canvas_metric, classification_metric, mean_iou, segmentation_metric
