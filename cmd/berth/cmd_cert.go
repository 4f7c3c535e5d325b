package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// CertPutOptions are the flags of "berth cert put".
type CertPutOptions struct {
	Etcd EtcdOptions
	// RouterKey is optional: the private key is sealed to the recipient
	// the routers publish; given, the recipient derived from it is used
	// (and must equal the published one, if any).
	RouterKey RouterKeyOptions
	// Recipient pins the recipient's fingerprint (sha256:…): put refuses
	// to seal to any other.
	Recipient string
}

// AddFlags registers the flags.
func (o *CertPutOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	o.RouterKey.AddFlags(f, "", "optional: the routers' key, to seal to the recipient derived from it (which must equal the one the routers published) instead of reading the published one; an operator does not need it")
	f.StringVar(&o.Recipient, "recipient", os.Getenv("BERTH_CERT_RECIPIENT"), "the routers' recipient fingerprint (sha256:…, as each router logs at start and put prints): refuse to seal to any other (env BERTH_CERT_RECIPIENT)")
}

func newCertCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Manage the TLS certificates every router serves (kept in etcd)",
	}
	var opts CertPutOptions
	put := &cobra.Command{
		Use:   "put HOST CERT.pem KEY.pem",
		Short: "Store a certificate and key for HOST (or *.example.com); routers pick it by SNI",
		Long: `put stores a certificate chain and its private key in etcd, for every router to
serve by SNI. The chain is stored as it is (public); the private key is sealed
with HPKE, bound to HOST, to the routers' public key: the one derived from their
--router-key-file, which they publish at /berth/v1/acme/cert-recipient. Only a
router opens it: readers of etcd (dnsd, the API, the console, an etcd backup),
and whoever ran put, never can. put needs write access to certs/, not the
routers' key, and prints the fingerprint of the key it sealed to; --recipient
refuses any other than the one given. The certificate and the key must belong
together.`,
		Example: "  berth cert put '*.example.com' fullchain.pem privkey.pem\n  berth cert put --recipient sha256:0123456789abcdef shop.example.com fullchain.pem privkey.pem",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return usagef("cert put needs HOST, CERT.pem and KEY.pem")
			}
			return runCertPut(cmd.Context(), g, opts, args[0], args[1], args[2])
		},
	}
	opts.AddFlags(put.Flags())
	cmd.AddCommand(put, newCertListCommand(g))
	return cmd
}

func runCertPut(ctx context.Context, g *GlobalOptions, o CertPutOptions, host, certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	var local *seal.Recipient
	if o.RouterKey.File != "" {
		key, err := o.RouterKey.Load()
		if err != nil {
			return err
		}
		if local, err = seal.RecipientFromKey(key); err != nil {
			return err
		}
	}
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
	defer cancel()
	rcpt, err := o.certRecipient(rctx, cli, k, local)
	if err != nil {
		return err
	}
	if o.Recipient != "" && rcpt.Fingerprint() != o.Recipient {
		return usagef("--recipient %s: the routers' recipient is %s, not this one (the published one may have been replaced: "+
			"compare with the recipient each router logs at start); nothing stored", o.Recipient, rcpt.Fingerprint())
	}
	if err := registry.PutCert(rctx, cli, k, host, certPEM, keyPEM, rcpt); err != nil {
		return o.Etcd.wrapErr(err)
	}
	fmt.Fprintf(g.stdout, "stored certificate for %s (private key sealed to the routers' recipient %s)\n", host, rcpt.Fingerprint())
	return nil
}

// certRecipient is the recipient berth cert put seals to: the one the
// routers published, or the one derived from --router-key-file (local),
// which must then equal the published one if there is one.
func (o *CertPutOptions) certRecipient(ctx context.Context, kv clientv3.KV, k registry.Keys, local *seal.Recipient) (*seal.Recipient, error) {
	pub, err := registry.GetCertRecipient(ctx, kv, k)
	switch {
	case errors.Is(err, registry.ErrNoCertRecipient) && local != nil:
		return local, nil
	case errors.Is(err, registry.ErrNoCertRecipient):
		return nil, usagef("no router has published its certificate recipient at %s: start a router with --router-key-file, "+
			"or pass --router-key-file (the routers' key) to seal to the recipient derived from it", k.CertRecipient())
	case errors.Is(err, registry.ErrBadCertRecipient):
		return nil, fmt.Errorf("%w: delete it (etcdctl del %s) and a router with --router-key-file publishes it again", err, k.CertRecipient())
	case err != nil:
		return nil, o.Etcd.wrapErr(err)
	case local != nil && !local.Equal(pub):
		return nil, usagef("--router-key-file: its certificate recipient %s is not the one the routers published at %s (%s): "+
			"the routers would not open the key; give the routers' key file, or leave --router-key-file out to seal to the published recipient",
			local.Fingerprint(), k.CertRecipient(), pub.Fingerprint())
	}
	return pub, nil
}
