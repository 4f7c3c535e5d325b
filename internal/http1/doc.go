// Package http1 is berth's HTTP/1.1 wire code: message heads parsed in
// place, body framing, the kept-alive upstream connections (Pool, and
// Transport for net/http's ReverseProxy) and raw socket I/O. The router
// decides where a request goes (routing, selection, health, pages);
// Forward moves it there and back.
//
// Invariants, each held by one piece of code and a test:
//
//   - A client connection whose request body was not read to its end is
//     never read again: the response says "Connection: close" and the
//     connection ends (ClientConn.KeepAlive; Forward writes the head).
//     The rest of a body is never parsed as a request.
//   - A request body with no progress for the body timeout ends the
//     request (ErrBodyTimeout, a 408 for the caller to send).
//   - The client's framing errors are the client's (ClientError): they
//     never count against an upstream.
//   - An upstream connection is reused only after a response framed
//     exactly (by Content-Length or chunks, to its last byte, nothing
//     ambiguous) that did not ask to close, with nothing read past its
//     end (Conn.clean, Pool.Put).
//   - An idle upstream connection is reused only if nothing arrived on it
//     since its response ended, checked at every reuse (Pool.Get), and is
//     closed once idle past the pool's idle timeout.
//   - The response header timeout counts from the end of the request
//     body, as net/http's Transport does.
//   - An upstream that answers before reading the whole body (a 413) has
//     its answer passed to the client, whose connection then closes.
package http1
