"""The JSON HTTP API, served by the Faust web server of every worker."""
