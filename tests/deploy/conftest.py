"""tests/deploy: the deployment files (compose, images, Prometheus, Grafana). The helper module
metric_catalog.py sits beside the tests (on the path through pyproject's pytest ``pythonpath``)."""
