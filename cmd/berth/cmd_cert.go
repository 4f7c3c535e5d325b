package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/registry"
)

// CertPutOptions are the flags of "berth cert put".
type CertPutOptions struct {
	Etcd      EtcdOptions
	RouterKey RouterKeyOptions
}

// AddFlags registers the flags.
func (o *CertPutOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	o.RouterKey.AddFlags(f, defaultRouterKeyFile, "the routers' key: 32 bytes (hex or base64), the same on every router; the private key is sealed with it (on the stack: the SSM parameter /berth/NAME/acme/acme.key, docs/security.md)")
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
with the routers' key (--router-key-file, AES-256-GCM, bound to HOST), so that
only a router opens it: readers of etcd (dnsd, the API, the console, an etcd
backup) never see it. The certificate and the key must belong together.`,
		Example: "  berth cert put --router-key-file router.key '*.example.com' fullchain.pem privkey.pem",
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
	sealer, err := o.RouterKey.Sealer()
	if err != nil {
		return usagef("%v\nberth cert put seals the private key with the routers' key, the one every router reads: "+
			"give it with --router-key-file FILE (on the stack it is the SSM parameter /berth/NAME/acme/acme.key, "+
			"on the nodes /etc/berth/acme/acme.key; see docs/security.md, \"Keys at rest\")", err)
	}
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
	defer cancel()
	if err := registry.PutCert(rctx, cli, k, host, certPEM, keyPEM, sealer); err != nil {
		return o.Etcd.wrapErr(err)
	}
	fmt.Fprintf(g.stdout, "stored certificate for %s (private key sealed with the routers' key)\n", host)
	return nil
}
