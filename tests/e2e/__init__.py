"""End-to-end tests: real processes, HTTP and SMTP servers, the sandbox server and the CLI as a
subprocess (``pytest -m e2e``)."""
