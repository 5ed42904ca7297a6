"""Events and their webhooks (DESIGN.md "Flows" 6): ``emit`` writes an event in the
transaction of the change it tells (the outbox), ``endpoints`` are where staff want them,
``delivery`` sends them after commit, signed, at least once, with backoff."""
