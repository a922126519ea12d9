"""model-health-exporter: Prometheus-native monitoring of ML models in production."""

from model_health_exporter.api import load_model_metrics, save_model_metrics

__version__ = "0.1.0"

__all__ = ["__version__", "load_model_metrics", "save_model_metrics"]
