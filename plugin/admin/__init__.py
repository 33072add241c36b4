"""What operators use: the admin routes on the plugin socket (status, doctor, gc, health,
metrics) and the command line's side of them (finding the daemon, talking to it and to Docker)."""
