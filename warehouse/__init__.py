"""The warehouse side: load delivered rows (the local COPY), views, analysis, dashboard."""
