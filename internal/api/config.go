package api

import (
	"errors"
	"time"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/registry"
)

// DefaultListen is where the API listens unless told otherwise: loopback.
const DefaultListen = "127.0.0.1:9090"

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	Keys registry.Keys // key layout (required)
	// OpenLocalReads lets read requests from a loopback address, naming a
	// loopback Host, in without a token (berth up). Default false: every
	// request needs a token.
	OpenLocalReads bool
	// MaxBody bounds a request body (default 1 MiB); larger is 413.
	MaxBody int64
	// TokenTTL is how long a looked-up token is remembered (default 5s):
	// a revoked token stops working within it. Negative: no caching.
	TokenTTL time.Duration
	// AuditRetention is how long audit records are kept (default 720h):
	// they live on leases of 1.1 × this.
	AuditRetention time.Duration
	// RequestTimeout bounds each etcd request (default 5s).
	RequestTimeout time.Duration
	// Remover removes a deleted app's units (control.Deleter). Default:
	// none, the units follow the records (berth up's local driver, agents).
	Remover control.Remover
	// DeleteWait bounds how long DELETE /v1/apps/{app} waits for the
	// app's instances to deregister (default 30s).
	DeleteWait time.Duration
	// EventBuffer is how many events the hub holds for resuming clients
	// (default 4096).
	EventBuffer int
	// Heartbeat is the interval of SSE comments that keep idle streams
	// open through proxies (default 15s).
	Heartbeat time.Duration
	// SSEWriteTimeout drops an event stream whose client does not take a
	// write within it (default 10s): a stuck reader costs its own stream
	// only.
	SSEWriteTimeout time.Duration
	// MaxStreams bounds concurrent event streams (default 10000); more
	// get 503.
	MaxStreams int
}

func (c *Config) setDefaults() {
	if c.MaxBody == 0 {
		c.MaxBody = 1 << 20
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 5 * time.Second
	}
	if c.AuditRetention == 0 {
		c.AuditRetention = 720 * time.Hour
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.DeleteWait == 0 {
		c.DeleteWait = 30 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.SSEWriteTimeout == 0 {
		c.SSEWriteTimeout = 10 * time.Second
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 10000
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Keys.Root() == "" {
		return errors.New("api: Keys is required")
	}
	if c.MaxBody < 1024 {
		return errors.New("api: MaxBody must be at least 1024 bytes")
	}
	if c.AuditRetention < time.Minute {
		return errors.New("api: audit retention must be at least 1m")
	}
	return nil
}
