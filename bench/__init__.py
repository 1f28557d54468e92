"""CityStat benchmark suite: ``make bench`` (``python -m bench.run``). See docs/performance.md."""
