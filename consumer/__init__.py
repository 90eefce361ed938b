"""KCL consumer: a thin record-processor adapter around pure dedupe/enrich functions and Firehose sinks."""
