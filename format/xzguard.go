package format

import (
	"errors"
	"fmt"
	"io"
)

// xzGuard passes an xz stream through to a decoder, reading its framing
// as it goes (stream header, block headers, LZMA2 chunk headers, index,
// footer), and fails before the decoder sees a block header whose LZMA2
// dictionary exceeds max: the decoder of github.com/ulikunitz/xz
// allocates the whole dictionary a block header asks for, up to 4 GiB,
// before it decodes a byte. The decoder still checks everything; the
// guard only follows the framing far enough to find every block header.
type xzGuard struct {
	r   io.Reader
	max int64
	err error

	state int
	need  int    // bytes wanted in hdr for the current state
	hdr   []byte // the header being collected
	skip  int64  // bytes to pass through unread
	check int    // size of a block's check, from the stream flags
	data  int64  // compressed bytes of the current block, for its padding
	count int64  // index: records left (two numbers each)
}

const (
	xzStream      = iota // stream header: 12 bytes
	xzBlock              // block header, or the index indicator
	xzChunk              // LZMA2 control byte
	xzChunkHeader        // rest of an LZMA2 chunk header
	xzIndex              // varints of the index
	xzPadding            // stream padding, or the next stream
)

// errXZFraming is returned by the guard for framing it cannot follow;
// the decoder would refuse it too.
var errXZFraming = errors.New("bad xz framing")

func newXZGuard(r io.Reader, max int64) *xzGuard {
	return &xzGuard{r: r, max: max, need: 12}
}

func (g *xzGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if ferr := g.feed(p[:n]); ferr != nil {
		g.err = ferr
		return 0, ferr
	}
	return n, err
}

// feed follows the framing through b.
func (g *xzGuard) feed(b []byte) error {
	for len(b) > 0 {
		if g.skip > 0 {
			k := int64(len(b))
			if k > g.skip {
				k = g.skip
			}
			g.skip -= k
			b = b[k:]
			continue
		}
		if g.state == xzPadding && len(g.hdr) == 0 {
			if b[0] == 0 {
				b = b[1:]
				continue
			}
			g.state, g.need = xzStream, 12
		}
		if g.state == xzIndex {
			// One varint at a time.
			g.hdr = append(g.hdr, b[0])
			b = b[1:]
			if g.hdr[len(g.hdr)-1]&0x80 != 0 {
				if len(g.hdr) > 9 {
					return errXZFraming
				}
				continue
			}
			if g.count < 0 { // the number of records
				v, _ := uvarint(g.hdr)
				if v > 1<<40 {
					return errXZFraming
				}
				g.count = int64(v) * 2
			} else {
				g.count--
			}
			g.data += int64(len(g.hdr))
			g.hdr = g.hdr[:0]
			if g.count == 0 {
				// Padding to four bytes (the indicator counted), CRC32,
				// footer.
				g.skip = (4-(g.data+1)%4)%4 + 4 + 12
				g.state, g.need = xzPadding, 0
			}
			continue
		}
		k := min(g.need-len(g.hdr), len(b))
		g.hdr = append(g.hdr, b[:k]...)
		b = b[k:]
		if len(g.hdr) < g.need {
			continue
		}
		if err := g.header(); err != nil {
			return err
		}
	}
	return nil
}

// header acts on the complete header in g.hdr for the current state.
func (g *xzGuard) header() error {
	h := g.hdr
	g.hdr = g.hdr[:0]
	switch g.state {
	case xzStream:
		if string(h[:6]) != string(xzMagic) {
			return errXZFraming
		}
		g.check = [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}[h[7]&0xf]
		g.state, g.need = xzBlock, 1
	case xzBlock:
		if len(h) == 1 {
			if h[0] == 0 { // the index indicator
				g.state, g.count, g.data = xzIndex, -1, 0
				return nil
			}
			g.need = (int(h[0]) + 1) * 4
			g.hdr = append(g.hdr, h[0])
			return nil
		}
		if err := g.blockHeader(h); err != nil {
			return err
		}
		g.state, g.need, g.data = xzChunk, 1, 0
	case xzChunk:
		c := h[0]
		g.data++
		switch {
		case c == 0: // end of the LZMA2 data: block padding, check
			g.skip = (4-g.data%4)%4 + int64(g.check)
			g.state, g.need = xzBlock, 1
		case c == 1 || c == 2: // uncompressed chunk
			g.state, g.need = xzChunkHeader, 3
			g.hdr = append(g.hdr, c)
		case c >= 0x80: // LZMA chunk: sizes, properties from 0xc0
			g.state, g.need = xzChunkHeader, 5
			if c >= 0xc0 {
				g.need = 6
			}
			g.hdr = append(g.hdr, c)
		default:
			return errXZFraming
		}
	case xzChunkHeader:
		n := int64(h[1])<<8 | int64(h[2]) + 1 // uncompressed: its size
		if h[0] >= 0x80 {
			n = int64(h[3])<<8 | int64(h[4]) + 1 // compressed size
		}
		g.data += int64(len(h)-1) + n
		g.skip = n
		g.state, g.need = xzChunk, 1
	}
	return nil
}

// blockHeader checks the filters of a block header: the LZMA2 dictionary
// must not exceed g.max.
func (g *xzGuard) blockHeader(h []byte) error {
	flags := h[1]
	p := h[2 : len(h)-4]                     // without the CRC32
	for _, bit := range []byte{0x40, 0x80} { // compressed, uncompressed size
		if flags&bit != 0 {
			_, k := uvarint(p)
			if k <= 0 {
				return errXZFraming
			}
			p = p[k:]
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, k := uvarint(p)
		if k <= 0 {
			return errXZFraming
		}
		p = p[k:]
		size, k := uvarint(p)
		if k <= 0 || uint64(len(p)-k) < size {
			return errXZFraming
		}
		props := p[k : k+int(size)]
		p = p[k+int(size):]
		if id == 0x21 && size == 1 {
			d := props[0]
			if d > 40 {
				return errXZFraming
			}
			dict := int64(0xffffffff)
			if d < 40 {
				dict = int64(2|d&1) << (d/2 + 11)
			}
			if dict > g.max {
				return fmt.Errorf("xz dictionary of %d bytes exceeds the limit of %d", dict, g.max)
			}
		}
	}
	return nil
}

// uvarint decodes an xz multibyte integer: at most 9 bytes, 7 bits
// each, low first. k <= 0 means malformed.
func uvarint(b []byte) (v uint64, k int) {
	for i := 0; i < len(b) && i < 9; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}
