"""CityStat plumbing, written once and shared by the four services."""
