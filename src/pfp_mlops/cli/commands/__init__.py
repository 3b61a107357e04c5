"""One module per `pfp` subcommand."""
