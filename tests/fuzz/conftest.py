"""tests/fuzz: seeds and open311_schema sit beside the tests (on the path through pyproject's pytest
``pythonpath``)."""
