"""The test cluster's own test suite."""
