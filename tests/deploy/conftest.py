"""tests/deploy: the deployment files (compose, images, Prometheus, Grafana). The helper module
metric_catalog.py sits beside the tests; the importlib import mode needs its folder on sys.path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
