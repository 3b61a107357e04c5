"""Pure domain: typed models, the exception tree and the policies. No I/O, no third-party ML imports."""
