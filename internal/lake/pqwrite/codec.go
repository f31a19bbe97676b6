package pqwrite

import (
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/format"
)

// Codec names a compression codec: "zstd" (default), "snappy" or "none".
func Codec(name string) (compress.Codec, error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return newZstdCodec()
	case "snappy":
		return &snappy.Codec{}, nil
	case "none", "uncompressed":
		return &parquet.Uncompressed, nil
	}
	return nil, fmt.Errorf("unknown compression %q: want zstd, snappy or none", name)
}

// zstdCodec is Parquet's ZSTD codec on one shared encoder, whose EncodeAll
// serves concurrent callers from a fixed set of encoder states.
// parquet-go's own codec keeps its encoders in a pool that every garbage
// collection empties, and each new encoder allocates and clears a history
// of twice the default 8 MiB window: with a hundred files open that was a
// tenth of the extract's CPU. Pages are a few hundred KiB at most, so a
// 1 MiB window loses nothing.
type zstdCodec struct {
	enc *zstd.Encoder
	dec func() (*zstd.Decoder, error)
}

func newZstdCodec() (*zstdCodec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(0), // GOMAXPROCS encoder states
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, fmt.Errorf("make zstd encoder: %w", err)
	}
	return &zstdCodec{
		enc: enc,
		dec: sync.OnceValues(func() (*zstd.Decoder, error) { return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0)) }),
	}, nil
}

func (c *zstdCodec) String() string                            { return "ZSTD" }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	d, err := c.dec()
	if err != nil {
		return dst[:0], fmt.Errorf("make zstd decoder: %w", err)
	}
	out, err := d.DecodeAll(src, dst[:0])
	if err != nil {
		return out, fmt.Errorf("decode zstd: %w", err)
	}
	return out, nil
}
