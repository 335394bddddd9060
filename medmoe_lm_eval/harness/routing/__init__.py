"""Routing: which experts answer a request, and with what weights.

``router`` is the run-time gate (top-k, shared expert, oracle/fixed/uniform routers); ``scorers``
turn a query into ``p(domain | query)`` and load router files, whose format (plain JSON, never a
pickle) ``router_file`` owns; ``training`` and ``evaluation``
build and judge routers and are never imported while a candidate is being evaluated.
"""
