package router

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// DNS01Config gets certificates for wildcard domains by ACME's DNS-01
// challenge: a TXT record at _acme-challenge.<domain>, written through a
// libdns provider (internal/route53dns for Route53) and checked by the CA.
type DNS01Config struct {
	// Provider writes and removes the TXT records (required).
	Provider certmagic.DNSProvider
	// Resolvers are DNS servers ("host:port") used to find the zone of a
	// name and to see the record arrive (default: the system's to find
	// the zone, then the zone's authoritative servers).
	Resolvers []string
	// PropagationTimeout bounds the wait for the record to be seen
	// (default 2 minutes, as certmagic; -1: do not check).
	PropagationTimeout time.Duration
	// TTL of the TXT records (default: the provider's).
	TTL time.Duration
}

// acmeManageRetry is the pause before managing wildcard domains again
// after certmagic refused to.
const acmeManageRetry = 30 * time.Second

// errNoDNSProvider is EnableACME's error for a DNS01Config without one.
var errNoDNSProvider = errors.New("acme: dns-01 needs a dns provider")

// enableDNS01 sets up the configuration whose issuer solves DNS-01 only;
// it shares the cache and storage (and so the cluster-wide locks) with
// the HTTP-01 / TLS-ALPN-01 one.
func (m *acmeManager) enableDNS01(c ACMEConfig, logger *zap.Logger) error {
	if c.DNS01.Provider == nil {
		return errNoDNSProvider
	}
	m.dnsCfg = certmagic.New(m.cache, certmagic.Config{
		Storage:            c.Storage,
		RenewalWindowRatio: c.RenewalWindowRatio,
		Logger:             logger,
	})
	m.dnsCfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(m.dnsCfg, certmagic.ACMEIssuer{
		CA:           m.issuer.CA,
		Email:        c.Email,
		Agreed:       true,
		TrustedRoots: c.TrustedRoots,
		DNS01Solver: &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        c.DNS01.Provider,
			Resolvers:          c.DNS01.Resolvers,
			PropagationTimeout: c.DNS01.PropagationTimeout,
			TTL:                c.DNS01.TTL,
			Logger:             logger,
		}},
		Logger: logger,
	})}
	return nil
}

// configFor is the configuration that manages a certificate for names:
// the DNS-01 one for a wildcard.
func (m *acmeManager) configFor(names []string) *certmagic.Config {
	if m.dnsCfg != nil && slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "*.") }) {
		return m.dnsCfg
	}
	return m.cfg
}

// RunACME keeps a certificate for each wildcard domain of the apps while
// DNS-01 is enabled: at each routing table change, a new wildcard domain's
// certificate is loaded from the shared storage or, when there is none,
// obtained (one router orders, under the storage's lock; the others load
// it), then renewed in its window; a wildcard domain that left is no
// longer renewed. It returns when ctx is done; without ACME or DNS-01 it
// only waits for that.
func (r *Router) RunACME(ctx context.Context) error {
	if r.acme == nil || r.acme.dnsCfg == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	managed := map[string]bool{}
	var retry <-chan time.Time // set after a failure to manage
	for {
		changed := *r.changed.Load()
		if t := r.table.Load(); t != nil {
			want := map[string]bool{}
			for suffix := range t.wild {
				want["*."+suffix] = true
			}
			var add, drop []string
			for name := range want {
				if !managed[name] {
					add = append(add, name)
				}
			}
			for name := range managed {
				if !want[name] {
					drop = append(drop, name)
				}
			}
			if len(add) > 0 {
				slices.Sort(add)
				retry = nil
				if err := r.acme.dnsCfg.ManageAsync(ctx, add); err != nil {
					r.log.WithError(err).WithField("domains", add).Warn("acme: cannot manage wildcard certificates; retrying in 30s")
					retry = time.After(acmeManageRetry)
				} else {
					for _, n := range add {
						managed[n] = true
					}
				}
			}
			if len(drop) > 0 {
				subjects := make([]certmagic.SubjectIssuer, len(drop))
				for i, n := range drop {
					subjects[i] = certmagic.SubjectIssuer{Subject: n}
					delete(managed, n)
				}
				r.acme.cache.RemoveManaged(subjects)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-retry:
		}
	}
}
