package format

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression names how record payloads are compressed. Its values are
// the ones stored in bits 0-3 of a record header's flags.
type Compression int

const (
	None Compression = iota
	Zstd
	XZ
)

// String returns the name ParseCompression accepts: "none", "zstd" or "xz".
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	case XZ:
		return "xz"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

// ParseCompression parses "none", "zstd" or "xz".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "none":
		return None, nil
	case "zstd":
		return Zstd, nil
	case "xz":
		return XZ, nil
	}
	return None, fmt.Errorf("unknown compression %q (want none, zstd or xz)", s)
}

// MaxRecordWindow is the largest zstd window and xz dictionary a
// compressed record may ask for (see SPEC.md, "Size caps"): what a
// reader holds to decompress one, whatever its length.
const MaxRecordWindow = 8 << 20

// zstdDecoder is shared by all readers: DecodeAll is safe for concurrent
// use and keeps its own pool of block decoders.
var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(2),
		zstd.WithDecoderMaxMemory(maxCap+1<<20),
		zstd.WithDecoderMaxWindow(MaxRecordWindow))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
})

// zstdStreams keeps a few idle stream decoders for decompressRecord; a
// decoder holds its window between uses, so there are never more than
// cap(zstdStreams) of them idle.
var zstdStreams = make(chan *zstd.Decoder, 2)

// decompressor returns a reader of the payload compressed with c that
// src yields, holding at most a MaxRecordWindow window, and a function
// to call once done with it.
func decompressor(c Compression, src io.Reader) (io.Reader, func(), error) {
	switch c {
	case Zstd:
		var d *zstd.Decoder
		select {
		case d = <-zstdStreams:
			if err := d.Reset(src); err != nil {
				d.Close()
				return nil, nil, fmt.Errorf("zstd: %v", err)
			}
		default:
			var err error
			d, err = zstd.NewReader(src,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(maxCap+1<<20),
				zstd.WithDecoderMaxWindow(MaxRecordWindow))
			if err != nil {
				return nil, nil, fmt.Errorf("zstd: %v", err)
			}
		}
		return d, func() {
			d.Reset(nil)
			select {
			case zstdStreams <- d:
			default:
				d.Close()
			}
		}, nil
	case XZ:
		zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(newXZGuard(src, MaxRecordWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %v", err)
		}
		return zr, func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %d", int(c))
}

var errRawLength = errors.New("payload does not decompress to its raw length")

// decompress decodes the stored payload src compressed with c into dst,
// which has exactly the raw length.
func decompress(c Compression, dst, src []byte) error {
	switch c {
	case Zstd:
		out, err := zstdDecoder().DecodeAll(src, dst[:0])
		if err != nil {
			return fmt.Errorf("zstd: %v", err)
		}
		if len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
			return errRawLength
		}
		return nil
	case XZ:
		zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(newXZGuard(bytes.NewReader(src), MaxRecordWindow))
		if err != nil {
			return fmt.Errorf("xz: %v", err)
		}
		if _, err := io.ReadFull(zr, dst); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return errRawLength
			}
			return fmt.Errorf("xz: %v", err)
		}
		var one [1]byte
		n, err := zr.Read(one[:])
		if n > 0 {
			return errRawLength
		}
		if err != io.EOF {
			if err == nil {
				err = errors.New("stream does not end")
			}
			return fmt.Errorf("xz: %v", err)
		}
		return nil
	}
	return fmt.Errorf("unknown compression %d", int(c))
}

// compressor compresses record payloads for a Writer. Its compress method
// is safe for concurrent use.
type compressor struct {
	c    Compression
	zenc *zstd.Encoder
	xcfg xz.WriterConfig
}

func newCompressor(c Compression, level, concurrency int) (*compressor, error) {
	cp := &compressor{c: c}
	switch c {
	case None:
	case Zstd:
		lvl := zstd.SpeedDefault
		if level != 0 {
			lvl = zstd.EncoderLevelFromZstd(level)
		}
		if concurrency < 1 {
			concurrency = 1
		}
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(lvl),
			zstd.WithEncoderConcurrency(concurrency),
			zstd.WithEncoderCRC(false), // the record has its own CRC
			zstd.WithWindowSize(MaxPageRun),
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
		cp.zenc = enc
	case XZ:
		cp.xcfg = xz.WriterConfig{DictCap: MaxPageRun, NoCheckSum: true} // the record has its own CRC
		if err := cp.xcfg.Verify(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown compression %d", int(c))
	}
	return cp, nil
}

// compress appends the compressed form of the concatenation of parts to
// dst[:0] and returns it.
func (cp *compressor) compress(dst []byte, parts ...[]byte) ([]byte, error) {
	switch cp.c {
	case Zstd:
		if len(parts) == 1 {
			return cp.zenc.EncodeAll(parts[0], dst[:0]), nil
		}
		var src []byte
		for _, p := range parts {
			src = append(src, p...)
		}
		return cp.zenc.EncodeAll(src, dst[:0]), nil
	case XZ:
		buf := bytes.NewBuffer(dst[:0])
		zw, err := cp.xcfg.NewWriter(buf)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			if _, err := zw.Write(p); err != nil {
				return nil, err
			}
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("cannot compress with %v", cp.c)
}

func (cp *compressor) close() {
	if cp.zenc != nil {
		cp.zenc.Close()
	}
}
