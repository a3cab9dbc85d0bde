"""Evaluation of generated images and music: quality, coverage and copying, each beside
its real-data floor. `evaluator` loads a dataset's evaluator classifier, `metrics` holds
the metrics, `images` computes them for a set of images, `report` writes eval.json/eval.md
for a workdir (it is above the task registry; nothing here trains or imports the loop)."""
