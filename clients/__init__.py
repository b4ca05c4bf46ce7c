"""The clients: svc, svstat, svok, dtdctl. Standard library and format modules only."""
