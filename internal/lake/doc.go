// Package lake is questlog's Parquet lake (its layout, schemas, data files, checkpoints and Check) and the only package that knows its paths and file names.
package lake

// The lake knows nothing of Kafka clients or of the game: records arrive as
// partition, offset, timestamp and JSON values already parsed by the
// caller. File I/O goes through Storage, so the lake can move to an object
// store; the Parquet encoding is pqwrite's.
//
// Decisions a reader of the files relies on:
//
//   - The hive keys live only in the paths, as Spark's partitionBy writes
//     them: event_type=<type> and event_date=<YYYY-MM-DD> (the UTC day of
//     event_time) are not columns of the files, so no reader (DuckDB's
//     hive_partitioning, Spark, pyarrow) sees the same column twice; each
//     file still names its type in its key-value metadata
//     (questlog.event_type).
//   - Columns are the event's fields in the order first seen, new fields
//     appended, then kafka_partition (INT32), kafka_offset (INT64),
//     kafka_timestamp. event_time and kafka_timestamp are
//     TIMESTAMP(MICROS, isAdjustedToUTC=true); JSON integers are INT64,
//     other numbers DOUBLE, strings UTF-8 BYTE_ARRAY, objects (http) groups
//     of nullable columns, arrays their JSON text. Every event column is
//     nullable; lineage columns are required.
//   - A type's schema only widens (int+float: float; any other conflict:
//     string; new field: new column) and each widening is a new version in
//     _schemas/<type>.json; each file records its version in its key-value
//     metadata (questlog.schema_version). A file is rolled only when its
//     type's schema widens under it: Parquet files have one schema.
//   - How far the lake is: one checkpoint per Kafka partition,
//     _checkpoints/<topic>/<partition>.json ({topic, partition, start,
//     next, updated}), written atomically after the files it vouches for
//     by the holder of the partition's lock; the legacy whole-topic
//     _checkpoints/<topic>.json is still read beneath them.
//   - Lake retention drops whole days: _retention/event_date=<day>.json
//     lists a day's files, offsets and rows before any is removed, and
//     readers leave a day with a manifest out (see RetentionDir).
//   - Quarantine files hold kafka_partition, kafka_offset, kafka_timestamp,
//     value (the raw bytes, BLOB: they need not be UTF-8) and error.
