package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/internal/registry"
)

func newCertCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Manage the TLS certificates every router serves (kept in etcd)",
	}
	var opts ApplyOptions
	put := &cobra.Command{
		Use:     "put HOST CERT.pem KEY.pem",
		Short:   "Store a certificate and key for HOST (or *.example.com); routers pick it by SNI",
		Example: "  berth cert put '*.example.com' fullchain.pem privkey.pem",
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

func runCertPut(ctx context.Context, g *GlobalOptions, o ApplyOptions, host, certFile, keyFile string) error {
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
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
	defer cancel()
	if err := registry.PutCert(rctx, cli, k, host, certPEM, keyPEM); err != nil {
		return o.Etcd.wrapErr(err)
	}
	fmt.Fprintf(g.stdout, "stored certificate for %s\n", host)
	return nil
}
