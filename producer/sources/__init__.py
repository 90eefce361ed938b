"""Sources: each fetches from one API and parses its answer into the record contract, nothing else."""
