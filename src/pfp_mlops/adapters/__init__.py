"""The only modules that import mlflow, ultralytics, optuna, dvc or boto3; they translate their errors."""
