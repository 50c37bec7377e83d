"""creditwatch configuration: the Settings model and example files."""
