"""The fault suite of issue 7: services that number their lines, a root that
is killed, stopped, starved and fed garbage, and an account of every line."""
