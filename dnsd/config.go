package dnsd

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Zone served, fully qualified (default "berth.").
	Zone string
	// TTL of answers (default 5s).
	TTL time.Duration
	// NegativeTTL is the SOA minimum: how long NXDOMAIN/NODATA may be
	// cached (default 5s).
	NegativeTTL time.Duration
	// MaxAnswers caps A/AAAA/SRV records per answer; 0 (default) sends all
	// (UDP answers are still truncated to the client's buffer, with TC).
	MaxAnswers int
	// StaleAfter: once the view has gone this long without confirmation
	// from etcd, queries get SERVFAIL (default 60s).
	StaleAfter time.Duration
	// NS is the name server name at the apex (default "ns.<zone>").
	NS string
	// Forward lists upstream resolvers ("10.0.0.2:53") for names outside
	// the zone; empty (default) refuses them.
	Forward []string
	// ForwardAllow are the client networks allowed to use Forward
	// (default: loopback only). berth is never an open resolver.
	ForwardAllow []netip.Prefix
	// Reverse answers PTR queries for instance addresses.
	Reverse bool
	// UDPSize is the EDNS0 buffer size advertised (default 1232).
	UDPSize uint16
}

func (c *Config) setDefaults() {
	if c.Zone == "" {
		c.Zone = "berth."
	}
	c.Zone = dns.Fqdn(strings.ToLower(c.Zone))
	if c.TTL == 0 {
		c.TTL = 5 * time.Second
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = 60 * time.Second
	}
	if c.NS == "" {
		c.NS = "ns." + c.Zone
	}
	c.NS = dns.Fqdn(strings.ToLower(c.NS))
	if len(c.ForwardAllow) == 0 {
		c.ForwardAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if c.UDPSize == 0 {
		c.UDPSize = 1232
	}
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	var errs []error
	if _, ok := dns.IsDomainName(c.Zone); !ok {
		errs = append(errs, fmt.Errorf("zone %q is not a domain name", c.Zone))
	}
	if c.TTL < time.Second || c.TTL > time.Hour {
		errs = append(errs, fmt.Errorf("ttl %s must be between 1s and 1h", c.TTL))
	}
	if c.MaxAnswers < 0 {
		errs = append(errs, errors.New("max answers must not be negative"))
	}
	return errors.Join(errs...)
}
