package hook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Check is a health check: "http:/path", "tcp" or "" (none).
type Check string

// Probe runs one check against addr with a timeout.
func (c Check) Probe(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case c == "":
		return nil
	case c == "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case strings.HasPrefix(string(c), "http:"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+strings.TrimPrefix(string(c), "http:"), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "berth-health")
		client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: status %d", req.URL.Path, resp.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("unknown health check %q (want http:/path or tcp)", string(c))
}

// ErrUnhealthy is returned by WaitHealthy when the deadline passes.
var ErrUnhealthy = errors.New("instance did not become healthy")

// WaitHealthy probes every interval until the check passes or ctx ends.
func (c Check) WaitHealthy(ctx context.Context, addr string, interval time.Duration) error {
	var last error
	for {
		if last = c.Probe(ctx, addr, interval); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w at %s: %v", ErrUnhealthy, addr, last)
		case <-time.After(interval):
		}
	}
}
