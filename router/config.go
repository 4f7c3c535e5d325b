package router

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config configures a Router. Zero values take the documented defaults.
type Config struct {
	// ID names this router in access records (default: the host name).
	ID string
	// TrustedProxies are networks whose X-Forwarded-For, X-Forwarded-Proto
	// and X-Real-IP headers are kept (a load balancer); from anyone else
	// they are replaced. Default: none.
	TrustedProxies []netip.Prefix
	// DialTimeout bounds connecting to an upstream (default 3s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds waiting for an upstream's response
	// headers (default 60s).
	ResponseHeaderTimeout time.Duration
	// FailWindow is how long an upstream that failed stays out of
	// rotation before it is tried again (default 10s).
	FailWindow time.Duration
	// MaxAttempts is how many upstreams one request may try (default 3).
	MaxAttempts int
	// MaxIdleConnsPerHost is the keep-alive pool per upstream (default 256).
	MaxIdleConnsPerHost int
	// PagesDir overrides the embedded error pages (404.html, 502.html,
	// 503.html, waiting.html) with files of the same names, if set.
	PagesDir string
	// AccessInterval is the least time between two access records of one
	// app written by this router (default 10s).
	AccessInterval time.Duration
	// RetryAfter is the Retry-After sent with 503 pages (default 5s).
	RetryAfter time.Duration
	// AccessLog logs every request at Info (otherwise at Debug).
	AccessLog bool
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 3*time.Second)
	def(&c.ResponseHeaderTimeout, 60*time.Second)
	def(&c.FailWindow, 10*time.Second)
	def(&c.AccessInterval, 10*time.Second)
	def(&c.RetryAfter, 5*time.Second)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = 256
	}
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts must be at least 1, got %d", c.MaxAttempts))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial timeout", c.DialTimeout}, {"response header timeout", c.ResponseHeaderTimeout}, {"fail window", c.FailWindow}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	return errors.Join(errs...)
}
