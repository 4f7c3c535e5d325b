package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/berthproject/berth/internal/acmestore"
	"github.com/berthproject/berth/internal/registry"
)

// CertListOptions are the flags of "berth cert list".
type CertListOptions struct {
	View      ViewOptions
	RouterKey RouterKeyOptions // the routers' key; none: ACME certificates listed without dates
}

func newCertListCommand(g *GlobalOptions) *cobra.Command {
	var opts CertListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the certificates the routers serve: from berth cert put, and from ACME",
		Long: `list shows every certificate in etcd: those stored with "berth cert put" and
those the routers obtained from an ACME CA (on demand for an app's domain, by
DNS-01 for a wildcard domain). ACME certificates are sealed in etcd: their
expiry is shown only with --router-key-file (on the stack, /etc/berth/acme/acme.key
on any node). The chains of those stored with "berth cert put" are public and
their private keys sealed with the same key; KEY says "clear key" for a record
written before keys were sealed: run berth cert put again to seal it.`,
		Example: "  berth cert list\n  sudo berth cert list --router-key-file /etc/berth/acme/acme.key -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCertList(cmd.Context(), g, opts)
		},
	}
	opts.View.AddFlags(cmd.Flags())
	opts.RouterKey.AddFlags(cmd.Flags(), "", "the routers' key, to open the ACME certificates and show their expiry")
	return cmd
}

// certRow is one certificate of "berth cert list".
type certRow struct {
	Host     string     `json:"host"`
	Source   string     `json:"source"`           // "etcd" (berth cert put) or "acme"
	Issuer   string     `json:"issuer,omitempty"` // CA (ACME: its directory)
	NotAfter *time.Time `json:"notAfter,omitempty"`
	// Key is how etcd holds the private key: "sealed" (with the routers'
	// key), or "clear" (a record of berth cert put written before keys
	// were sealed).
	Key string `json:"key"`
}

func runCertList(ctx context.Context, g *GlobalOptions, o CertListOptions) error {
	if o.View.Output != "table" && o.View.Output != "json" {
		return usagef("--output must be table or json, got %q", o.View.Output)
	}
	var key []byte
	if o.RouterKey.File != "" {
		var err error
		if key, err = o.RouterKey.Load(); err != nil {
			return err
		}
	}
	cli, k, err := o.View.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.View.Etcd.RequestTimeout)
	defer cancel()
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k, RequestTimeout: o.View.Etcd.RequestTimeout}, log).Load(rctx)
	if err != nil {
		return o.View.Etcd.wrapErr(err)
	}
	var rows []certRow
	for host, c := range s.Certs {
		row := certRow{Host: host, Source: "etcd", Key: "sealed"}
		if c.ClearKey() {
			row.Key = "clear"
		}
		if c.Leaf != nil {
			row.Issuer, row.NotAfter = c.Leaf.Issuer.CommonName, &c.Leaf.NotAfter
		}
		rows = append(rows, row)
	}
	acme, err := acmestore.ListCertificates(rctx, cli, k.ACMEPrefix())
	if err != nil {
		return o.View.Etcd.wrapErr(err)
	}
	var store *acmestore.Store
	if key != nil && len(acme) > 0 {
		if store, err = acmestore.New(cli, k.ACMEPrefix(), key, 0, log); err != nil {
			return err
		}
		defer store.Close()
	}
	for _, c := range acme {
		row := certRow{Host: c.Name, Source: "acme", Issuer: c.Issuer, Key: "sealed"}
		if store != nil {
			pemBytes, err := store.Load(rctx, c.Key)
			if err != nil {
				return fmt.Errorf("%s: %w (is --router-key-file the routers' key?)", c.Name, err)
			}
			if b, _ := pem.Decode(pemBytes); b != nil {
				if leaf, err := x509.ParseCertificate(b.Bytes); err == nil {
					row.NotAfter = &leaf.NotAfter
				}
			}
		}
		rows = append(rows, row)
	}
	sortCertRows(rows)
	if o.View.Output == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []certRow{}
		}
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSOURCE\tKEY\tISSUER\tNOT AFTER")
	for _, r := range rows {
		key := r.Key
		if key == "clear" {
			key = "clear key (berth cert put again)"
		}
		notAfter := "sealed (--router-key-file)"
		if r.NotAfter != nil {
			notAfter = r.NotAfter.UTC().Format(time.RFC3339) + " (" + expiresIn(*r.NotAfter) + ")"
		} else if r.Source == "etcd" {
			notAfter = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Host, r.Source, key, r.Issuer, notAfter)
	}
	return tw.Flush()
}

// sortCertRows orders rows by host, then source.
func sortCertRows(rows []certRow) {
	slices.SortFunc(rows, func(a, b certRow) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.Source, b.Source))
	})
}

// expiresIn says how far t is, in days.
func expiresIn(t time.Time) string {
	d := time.Until(t)
	if d < 0 {
		return "expired"
	}
	return fmt.Sprintf("in %dd", int(d.Hours()/24))
}
