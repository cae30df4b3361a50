"""Tables and plots from the Parquet results; reads files only, never live objects."""
