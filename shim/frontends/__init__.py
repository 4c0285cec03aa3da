"""The ways in: the podshim command line, the OCI hook, the daemon's socket server and metrics.

Only this package (and ``shim.runtime``) schedules I/O; the functional core never imports it.
"""
