"""Evaluation: task types, generation and choice scoring, metrics, instruction checks, lm-eval."""
