"""What the tests share: stand-in servers, Redis processes, waits, stream readers, the
settings and scenarios of the end-to-end runs, the HTTP API and the sandbox in process, the
accounts and alerts the API and status page tests start from, and the reply fixtures
(``fixtures/``). Test modules import from here, never from one another."""
