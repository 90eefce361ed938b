"""Producers: fetch from a source, wrap in the record contract, put on the Kinesis stream."""
