"""The built-in dashboard: a local web page over the warehouse."""
