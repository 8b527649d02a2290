"""The operator's view: a context run's page, the dashboard, and how both show times.

Server-rendered on the admin's templates; reads only (selectors of their own in ``run`` and
``dashboard``), no business logic, no asset from outside the server.
"""
