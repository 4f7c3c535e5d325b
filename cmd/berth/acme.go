package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/berthproject/berth/internal/acmestore"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/route53dns"
	"github.com/berthproject/berth/router"
)

// ACMEOptions are the ACME flags of "berth router".
type ACMEOptions struct {
	Enable  bool
	CA      string
	CARoot  string
	Email   string
	LockTTL time.Duration
	// Route53Zone turns DNS-01 on for the apps' wildcard domains, through
	// this Route53 hosted zone; Route53Endpoint and DNS01Resolvers are
	// for tests and unusual networks.
	Route53Zone     string
	Route53Endpoint string
	DNS01Resolvers  []string
}

// AddFlags registers the flags.
func (o *ACMEOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Enable, "acme", envOr("BERTH_ROUTER_ACME", "") == "1", "issue certificates from an ACME CA on demand for the apps' exact domains (HTTP-01, TLS-ALPN-01), shared through etcd (env BERTH_ROUTER_ACME=1)")
	f.StringVar(&o.CA, "acme-ca", envOr("BERTH_ROUTER_ACME_CA", "https://acme-v02.api.letsencrypt.org/directory"), "ACME directory URL (env BERTH_ROUTER_ACME_CA)")
	f.StringVar(&o.CARoot, "acme-ca-root", envOr("BERTH_ROUTER_ACME_CA_ROOT", ""), "PEM file of roots trusted for the ACME CA's API (a test CA; default: the system's)")
	f.StringVar(&o.Email, "acme-email", envOr("BERTH_ROUTER_ACME_EMAIL", ""), "contact of the ACME account (env BERTH_ROUTER_ACME_EMAIL)")
	f.StringVar(&o.Route53Zone, "acme-route53-zone", envOr("BERTH_ROUTER_ACME_ROUTE53_ZONE", ""), "Route53 hosted zone id: the apps' wildcard domains (*.example.com) in it get certificates by DNS-01, with the instance role's credentials (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); default: no wildcard certificates (env BERTH_ROUTER_ACME_ROUTE53_ZONE)")
	f.StringVar(&o.Route53Endpoint, "acme-route53-endpoint", envOr("BERTH_ROUTER_ACME_ROUTE53_ENDPOINT", route53dns.DefaultEndpoint), "Route53 API endpoint (env BERTH_ROUTER_ACME_ROUTE53_ENDPOINT)")
	f.StringSliceVar(&o.DNS01Resolvers, "acme-dns01-resolvers", nil, "DNS servers (host:port) to find a wildcard domain's zone and see its challenge record (default: the system's, then the zone's own servers)")
	f.DurationVar(&o.LockTTL, "acme-lock-ttl", acmestore.DefaultLockTTL, "lease TTL of the cluster-wide issuance locks: how long a dead router's lock lasts")
}

// enable turns ACME on for r, with its storage under k sealed with key
// (the routers' key), validated on the router's first plain and TLS
// listeners. It returns the store to close.
func (o *ACMEOptions) enable(r *router.Router, cli *clientv3.Client, k registry.Keys, key []byte, httpAddr, tlsAddr string, log logrus.FieldLogger) (*acmestore.Store, error) {
	if !reZoneID.MatchString(o.Route53Zone) {
		return nil, usagef("--acme-route53-zone %q: want a hosted zone id such as Z0123456789ABC (aws route53 list-hosted-zones)", o.Route53Zone)
	}
	if tlsAddr == "" {
		return nil, usagef("--acme needs an HTTPS listener: --listen-tls or a socket named https")
	}
	if key == nil {
		return nil, usagef("--acme needs the routers' key: --router-key-file")
	}
	var roots *x509.CertPool
	if o.CARoot != "" {
		pem, err := os.ReadFile(o.CARoot)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, usagef("--acme-ca-root %s: no PEM certificate", o.CARoot)
		}
	}
	store, err := acmestore.New(cli, k.ACMEPrefix(), key, o.LockTTL, log)
	if err != nil {
		return nil, err
	}
	acfg := router.ACMEConfig{CA: o.CA, Email: o.Email, Storage: store, TrustedRoots: roots,
		HTTPAddr: httpAddr, TLSAddr: tlsAddr, Logger: zapToLogrus(log.WithField("component", "acme"))}
	if o.Route53Zone != "" {
		acfg.DNS01 = &router.DNS01Config{Provider: &route53dns.Provider{ZoneID: o.Route53Zone, Endpoint: o.Route53Endpoint},
			Resolvers: o.DNS01Resolvers}
	}
	err = r.EnableACME(acfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// reZoneID is a Route53 hosted zone id, or empty.
var reZoneID = regexp.MustCompile(`^([A-Z0-9]{1,32})?$`)

// zapToLogrus returns a zap logger writing to log (certmagic logs with zap).
func zapToLogrus(log logrus.FieldLogger) *zap.Logger {
	return zap.New(logrusCore{log: log})
}

// logrusCore is a zapcore.Core over a logrus logger.
type logrusCore struct {
	log    logrus.FieldLogger
	fields []zapcore.Field
}

func (c logrusCore) Enabled(zapcore.Level) bool { return true }

func (c logrusCore) With(fields []zapcore.Field) zapcore.Core {
	return logrusCore{log: c.log, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c logrusCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c logrusCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(c.fields[:len(c.fields):len(c.fields)], fields...) {
		f.AddTo(enc)
	}
	level := logrus.DebugLevel
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = logrus.ErrorLevel
	case e.Level == zapcore.WarnLevel:
		level = logrus.WarnLevel
	case e.Level == zapcore.InfoLevel:
		level = logrus.InfoLevel
	}
	c.log.WithFields(enc.Fields).Log(level, e.Message)
	return nil
}

func (c logrusCore) Sync() error { return nil }
