"""creditwatch test suite."""
