import sys
from pathlib import Path

# The suite runs with --import-mode=importlib: make seeds and open311_schema importable from here.
sys.path.insert(0, str(Path(__file__).parent))
