package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// Body copies of the fast lane. Each returns the error of the side that
// failed: rerr reading src, werr writing dst. Before blocking on src they
// flush dst, so streamed responses (SSE, long polls) reach the client at
// once.

// fill waits for more bytes in src, flushing dst first.
func fill(dst *bufio.Writer, src *bufio.Reader) (rerr, werr error) {
	if err := dst.Flush(); err != nil {
		return nil, err
	}
	if _, err := src.Peek(src.Buffered() + 1); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err, nil
	}
	return nil, nil
}

// copyN copies exactly n bytes.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) (rerr, werr error) {
	for n > 0 {
		if src.Buffered() == 0 {
			if rerr, werr = fill(dst, src); rerr != nil || werr != nil {
				return rerr, werr
			}
		}
		b, _ := src.Peek(int(min(int64(src.Buffered()), n)))
		if _, err := dst.Write(b); err != nil {
			return nil, err
		}
		src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil, nil
}

// maxChunkLine bounds a chunk-size or trailer line.
const maxChunkLine = 4 << 10

// line returns the next line of src, CRLF included, left in the buffer.
func line(dst *bufio.Writer, src *bufio.Reader) (l []byte, rerr, werr error) {
	for {
		buf, _ := src.Peek(src.Buffered())
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if i == 0 || buf[i-1] != '\r' {
				return nil, ErrMalformed, nil
			}
			return buf[:i+1], nil, nil
		}
		if src.Buffered() >= maxChunkLine {
			return nil, ErrMalformed, nil
		}
		if rerr, werr = fill(dst, src); rerr != nil || werr != nil {
			return nil, rerr, werr
		}
	}
}

// chunkSize parses a chunk-size line ("1a;ext=1\r\n").
func chunkSize(l []byte) (int64, bool) {
	l = l[:len(l)-2]
	if !FieldText(l) {
		return 0, false
	}
	l = bytes.TrimRight(l, " \t")
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i] // no space before the extension: as strict as net/http
	}
	if len(l) == 0 || len(l) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range l {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// copyChunked passes a chunked body through as it is (extensions and
// trailers included), checking its framing.
func copyChunked(dst *bufio.Writer, src *bufio.Reader) (rerr, werr error) {
	for {
		l, rerr, werr := line(dst, src)
		if rerr != nil || werr != nil {
			return rerr, werr
		}
		size, ok := chunkSize(l)
		if !ok {
			return ErrMalformed, nil
		}
		if _, err := dst.Write(l); err != nil {
			return nil, err
		}
		src.Discard(len(l))
		if size == 0 {
			break
		}
		if rerr, werr = copyN(dst, src, size); rerr != nil || werr != nil {
			return rerr, werr
		}
		if l, rerr, werr = line(dst, src); rerr != nil || werr != nil {
			return rerr, werr
		}
		if len(l) != 2 {
			return ErrMalformed, nil
		}
		dst.Write(l)
		src.Discard(2)
	}
	for { // trailers, up to the blank line
		l, rerr, werr := line(dst, src)
		if rerr != nil || werr != nil {
			return rerr, werr
		}
		if len(l) > 2 {
			if _, _, ok := HeaderLine(l[:len(l)-2]); !ok {
				return ErrMalformed, nil
			}
		}
		if _, err := dst.Write(l); err != nil {
			return nil, err
		}
		src.Discard(len(l))
		if len(l) == 2 {
			return nil, nil
		}
	}
}

// rechunk sends a body that ends when the upstream closes as chunks.
func rechunk(dst *bufio.Writer, src *bufio.Reader) (rerr, werr error) {
	var hex [16]byte
	for {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return nil, err
			}
			if _, err := src.Peek(1); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return err, nil
			}
		}
		b, _ := src.Peek(src.Buffered())
		dst.Write(strconv.AppendInt(hex[:0], int64(len(b)), 16))
		dst.WriteString("\r\n")
		dst.Write(b)
		if _, err := dst.WriteString("\r\n"); err != nil {
			return nil, err
		}
		src.Discard(len(b))
	}
	_, err := dst.WriteString("0\r\n\r\n")
	return nil, err
}
