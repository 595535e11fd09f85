"""hpo: hyperparameter optimization for fine-tuning Hugging Face models."""

__version__ = "0.1.0"
