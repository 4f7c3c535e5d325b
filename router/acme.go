package router

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"
)

// ACMEConfig configures certificates from an ACME CA, issued on demand
// for the exact hosts of the apps' domains and shared by every router
// through Storage. Zero values take the documented defaults.
type ACMEConfig struct {
	// CA is the ACME directory URL (default: Let's Encrypt's production).
	CA string
	// Email is the ACME account's contact (default: none).
	Email string
	// Storage holds the account, certificates, challenge tokens and locks
	// shared by every router (internal/acmestore). Required.
	Storage certmagic.Storage
	// TrustedRoots are the roots trusted for the CA's API (default: the
	// system's); a test CA's own root.
	TrustedRoots *x509.CertPool
	// HTTPAddr and TLSAddr are the addresses of this router's plain and
	// TLS listeners (default ":80" and ":443"), where the CA's HTTP-01 and
	// TLS-ALPN-01 validations arrive.
	HTTPAddr, TLSAddr string
	// DisableHTTPChallenge and DisableTLSALPNChallenge leave a challenge
	// type out (default: both are offered), e.g. when the CA cannot reach
	// port 80.
	DisableHTTPChallenge, DisableTLSALPNChallenge bool
	// RenewalWindowRatio is the part of a certificate's lifetime, counted
	// back from its expiry, in which it is renewed (default 1/3, as
	// certmagic).
	RenewalWindowRatio float64
	// DNS01 gets certificates for the apps' wildcard domains
	// ("*.example.com") by DNS-01 (default nil: wildcard domains get no
	// ACME certificate). See RunACME.
	DNS01 *DNS01Config
	// Logger receives certmagic's logs (default: none).
	Logger *zap.Logger
}

// acmeManager issues and renews certificates through certmagic.
type acmeManager struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	// dnsCfg issues the wildcard domains' certificates by DNS-01 (nil:
	// no DNS01Config); it shares cache and storage with cfg.
	dnsCfg  *certmagic.Config
	metrics *acmeMetrics
}

// errNotOurHost is the on-demand decision for a name that is not an exact
// domain of any app.
var errNotOurHost = errors.New("not a domain of any app")

// EnableACME issues certificates from an ACME CA for the hosts of the
// apps' domains, on demand at the first TLS handshake for one, and renews
// them at a handshake in their renewal window. Call it before serving;
// StopACME stops it.
func (r *Router) EnableACME(c ACMEConfig) error {
	if c.Storage == nil {
		return errors.New("acme: no storage")
	}
	httpHost, httpPort, err := splitPort(c.HTTPAddr, 80)
	if err != nil {
		return fmt.Errorf("acme: http address: %w", err)
	}
	_, tlsPort, err := splitPort(c.TLSAddr, 443)
	if err != nil {
		return fmt.Errorf("acme: tls address: %w", err)
	}
	logger := c.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	m := &acmeManager{metrics: newACMEMetrics()}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) { return m.configFor(c.Names), nil },
		Logger:           logger,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage:            c.Storage,
		RenewalWindowRatio: c.RenewalWindowRatio,
		Logger:             logger,
		OnDemand:           &certmagic.OnDemandConfig{DecisionFunc: r.acmeDecision},
	})
	m.issuer = certmagic.NewACMEIssuer(m.cfg, certmagic.ACMEIssuer{
		CA:           cmp.Or(c.CA, certmagic.LetsEncryptProductionCA),
		Email:        c.Email,
		Agreed:       true,
		TrustedRoots: c.TrustedRoots,
		// Our own listeners are where the CA connects: certmagic finds
		// them taken and leaves the challenges to HandleHTTPChallenge and
		// GetCertificate, which read the tokens from the shared storage.
		ListenHost:              httpHost,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		DisableHTTPChallenge:    c.DisableHTTPChallenge,
		DisableTLSALPNChallenge: c.DisableTLSALPNChallenge,
		Logger:                  logger,
	})
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	m.metrics.watch(m.cfg)
	if c.DNS01 != nil {
		if err := m.enableDNS01(c, logger); err != nil {
			return err
		}
		m.metrics.watch(m.dnsCfg)
	}
	r.acme = m
	return nil
}

// StopACME stops certmagic's background work.
func (r *Router) StopACME() {
	if r.acme != nil {
		r.acme.cache.Stop()
	}
}

// acmeDecision allows on-demand issuance for the exact hosts of the apps'
// domains only: never for a wildcard (DNS01Config: RunACME keeps those),
// an app's name fallback or any other name a client sends.
func (r *Router) acmeDecision(_ context.Context, name string) error {
	if r.table.Load().exact[strings.ToLower(name)] == nil {
		return fmt.Errorf("%w: %q", errNotOurHost, name)
	}
	return nil
}

// acmeChallenge answers the CA's HTTP-01 validation requests (for tokens
// any router stored) and reports whether it did.
// Only the apps' exact domains are looked up: a token in the shared
// storage costs an etcd read, which a client naming random hosts must not
// be able to cause.
func (r *Router) acmeChallenge(w http.ResponseWriter, req *http.Request) bool {
	if r.acme == nil || req.TLS != nil || !strings.HasPrefix(req.URL.Path, challengeBasePath) {
		return false
	}
	if r.acmeDecision(req.Context(), normalizeHost(req.Host)) != nil {
		return false
	}
	return r.acme.issuer.HandleHTTPChallenge(w, req)
}

// acmeChallengePath reports whether a request target is an HTTP-01
// validation the fast lane must leave to net/http.
func (r *Router) acmeChallengePath(target []byte) bool {
	return r.acme != nil && strings.HasPrefix(string(target), challengeBasePath)
}

const challengeBasePath = "/.well-known/acme-challenge/"

// TLSProtos are the ALPN protocols of the router's TLS listeners: HTTP/2,
// HTTP/1.1, and the TLS-ALPN-01 validation (acme-tls/1), which
// GetCertificate answers when ACME is enabled.
func TLSProtos() []string { return []string{"h2", "http/1.1", acmez.ACMETLS1Protocol} }

// isALPNChallenge reports whether a handshake is the CA's TLS-ALPN-01
// validation.
func isALPNChallenge(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, acmez.ACMETLS1Protocol)
}

// splitPort splits a listener address, with def when it is empty.
func splitPort(addr string, def int) (string, int, error) {
	if addr == "" {
		return "", def, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, err
	}
	return host, p, nil
}
