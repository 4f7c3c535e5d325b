package router

import (
	"bytes"

	"github.com/berthproject/berth/internal/http1"
)

// appendOutbound appends the fast lane's outbound head to out: the
// request line and headers as received, minus hop-by-hop and forwarding
// headers (and names with "_" unless allowed), plus X-Forwarded-For,
// -Host, -Proto (https when the client's connection is TLS) and X-Real-IP
// (kept from trusted proxies only), as the net/http lane's rewrite does.
func appendOutbound(out []byte, h *http1.RequestHead, client string, trusted, tls, underscores bool) []byte {
	line, rest, _ := bytes.Cut(h.Raw, []byte("\r\n"))
	out = append(out, line...)
	out = append(out, "\r\n"...)
	for {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch http1.KindOf(name) {
		case http1.Connection, http1.HopByHop, http1.Trailer, http1.XForwardedFor, http1.XForwardedHost,
			http1.XForwardedProto, http1.XRealIP, http1.Forwarded:
			continue
		}
		if !underscores && bytes.IndexByte(name, '_') >= 0 {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	if client != "" {
		out = append(out, "X-Forwarded-For: "...)
		if trusted && len(h.XFF) > 0 {
			out = append(append(out, h.XFF...), ", "...)
		}
		out = append(append(out, client...), "\r\n"...)
	}
	out = append(append(append(out, "X-Forwarded-Host: "...), h.Host...), "\r\n"...)
	proto := []byte("http")
	if tls {
		proto = []byte("https")
	}
	if trusted && (string(h.XFP) == "http" || string(h.XFP) == "https") {
		proto = h.XFP
	}
	out = append(append(append(out, "X-Forwarded-Proto: "...), proto...), "\r\n"...)
	if client != "" {
		real := []byte(client)
		if trusted && len(h.XRI) > 0 {
			real = h.XRI
		}
		out = append(append(append(out, "X-Real-IP: "...), real...), "\r\n"...)
	}
	return append(out, "\r\n"...)
}
