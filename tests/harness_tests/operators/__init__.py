"""Small operators the harness suite runs against the test cluster."""
