"""MLflow: logging a results folder, uploading pending ones exactly once, registered-model
baselines and promotion, prior runs as baselines, and the `mlflow.evaluate` plugin."""
