package router

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/berthproject/berth/internal/seal"
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
	// RouterKey is the routers' key (seal.KeySize bytes, the same on every
	// router). The HPKE key pair derived from it (seal.PrivateFromKey)
	// opens the sealed private keys of the certificates in etcd (berth cert
	// put), and RunCertRecipient publishes its public key for berth cert
	// put to seal to. Default nil: those certificates are not served
	// (a warning and berth_router_etcd_certs_skipped_total say so); records
	// with a key in clear, written before keys were sealed, still are.
	RouterKey []byte

	// Limits towards clients, applied by both lanes (Server).

	// ReadHeaderTimeout bounds reading a request head (default 10s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a client's kept-alive connection idle this long
	// (default 120s).
	IdleTimeout time.Duration
	// BodyTimeout ends a request whose body makes no progress for this
	// long with 408 and closes the connection (default 30s).
	BodyTimeout time.Duration
	// MaxHeaderBytes bounds a request head (default 64 KiB; net/http
	// allows 4 KiB more for the request line).
	MaxHeaderBytes int
	// AllowUnderscoreHeaders passes request header names containing "_"
	// on to upstreams. By default they are dropped, as nginx does: CGI-style
	// backends read "X_Forwarded_For" and "X-Forwarded-For" alike, so an
	// underscored name could pass for a header the router sets.
	AllowUnderscoreHeaders bool
	// UpstreamIdleTimeout closes kept-alive upstream connections unused
	// this long (default 90s).
	UpstreamIdleTimeout time.Duration
}

// Defaults of the limits, for flags that show them.
const (
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout         = 120 * time.Second
	DefaultBodyTimeout         = 30 * time.Second
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultUpstreamTimeout     = 60 * time.Second
	DefaultUpstreamIdleTimeout = 90 * time.Second
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 3*time.Second)
	def(&c.ResponseHeaderTimeout, DefaultUpstreamTimeout)
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.BodyTimeout, DefaultBodyTimeout)
	def(&c.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
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
	}{{"dial timeout", c.DialTimeout}, {"response header timeout", c.ResponseHeaderTimeout}, {"fail window", c.FailWindow},
		{"read header timeout", c.ReadHeaderTimeout}, {"idle timeout", c.IdleTimeout}, {"body timeout", c.BodyTimeout},
		{"upstream idle timeout", c.UpstreamIdleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.RouterKey != nil && len(c.RouterKey) != seal.KeySize {
		errs = append(errs, fmt.Errorf("router key must be %d bytes, got %d", seal.KeySize, len(c.RouterKey)))
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("max header bytes must not be negative"))
	}
	return errors.Join(errs...)
}
